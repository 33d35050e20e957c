//! The store contract against DynamoDB and S3 in a real emulator (moto, started by the test
//! command), each check on its own table and bucket created from template.yaml.

const TEMPLATE: &str = include_str!("../../../template.yaml");

dispatcher_app::contract_tests!(|| async {
    let name = std::thread::current()
        .name()
        .unwrap_or("contract")
        .to_owned();
    dispatcher_aws::emulator::endpoint(&name)?;
    let clients = dispatcher_aws::Clients::from_env(true).await;
    Some(
        dispatcher_aws::emulator::fresh(&clients, TEMPLATE)
            .await
            .expect("provision from template")
            .0,
    )
});
