//! Signing a request with the caller's AWS credentials (SigV4, service `execute-api`): how
//! `dispatcher override --api` calls the control API behind API Gateway's `AWS_IAM`
//! authoriser.

use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials as _;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use dispatcher_app::SourceError;

/// The headers to add to a request of `method` to `url` with `body` so that API Gateway
/// accepts it as signed by the credentials `config` resolves (the usual chain: the
/// environment, the profile, SSO, the instance role).
pub async fn headers(
    config: &aws_config::SdkConfig,
    method: &str,
    url: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, SourceError> {
    let provider = config
        .credentials_provider()
        .ok_or_else(|| SourceError::permanent("sigv4", "no AWS credentials are configured"))?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| SourceError::permanent("sigv4", "the AWS credentials").because(e))?;
    let region = config.region().ok_or_else(|| {
        SourceError::permanent("sigv4", "no AWS region is configured (AWS_REGION)")
    })?;
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region.as_ref())
        .name("execute-api")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SourceError::permanent("sigv4", "the signing parameters").because(e))?
        .into();
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or_else(|| {
            SourceError::permanent("sigv4", format!("{url} is not a URL with a host"))
        })?;
    let signed_headers = [("host", host.as_str()), ("content-type", content_type)];
    let request = SignableRequest::new(
        method,
        url,
        signed_headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SourceError::permanent("sigv4", "the request").because(e))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| SourceError::permanent("sigv4", "signing").because(e))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_owned(), h.value().to_owned()))
        .collect())
}
