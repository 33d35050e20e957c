//! Prometheus `/api/v1/query` responses (resultType `vector`) keyed by `job_name`.

use std::collections::BTreeMap;

use dispatcher_core::model::Volumes;
use serde::Deserialize;

use crate::yaml::maybe_gunzip;

/// The dispatcher's run-count query (dispatcher-semantics.md §7).
pub const RUNS_QUERY: &str =
    r#"sum(increase(prowjob_state_transitions{state="pending"}[7d])) by (job_name)"#;

#[derive(Debug, Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    /// Read as samples only once the type says it is a vector: a scalar or a matrix is
    /// named as what it is, not as a malformed vector.
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Sample {
    metric: Metric,
    value: (f64, String),
}

/// Only the label we key by; the others are not kept (tens of thousands of series).
#[derive(Debug, Deserialize)]
struct Metric {
    #[serde(default)]
    job_name: Option<String>,
}

/// What a vector measures per job, and so how it becomes a term of the demand model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Runs over the window (the run-count query).
    Runs,
    /// Job run seconds (the optional duration query): job-hours.
    Seconds,
    /// CPU seconds (the optional CPU query): CPU-hours.
    CpuSeconds,
    /// Memory byte-seconds (the optional memory query): GiB-hours.
    ByteSeconds,
}

impl Measure {
    /// Units of the vector in one unit of its demand term, as HEAD scales them.
    pub fn per_unit(self) -> f64 {
        match self {
            Measure::Runs => 1.0,
            Measure::Seconds | Measure::CpuSeconds => 3600.0,
            Measure::ByteSeconds => 3600.0 * 1024.0 * 1024.0 * 1024.0,
        }
    }
}

/// Job volumes as measured: the demand terms, and the digest of each response for the
/// plan's provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// Per job: runs, hours and resource use over the window.
    pub volumes: Volumes,
    /// Digests (or descriptions) of the responses, for the plan's provenance.
    pub runs_digest: String,
    /// Digest of the durations vector, when it was queried.
    pub durations_digest: Option<String>,
    /// Digest of the CPU-seconds vector, when it was queried.
    pub cpu_digest: Option<String>,
    /// Digest of the memory byte-seconds vector, when it was queried.
    pub memory_digest: Option<String>,
    /// What the vectors held that was skipped (non-job series, odd values).
    pub warnings: Vec<String>,
}

impl Demand {
    /// The demand of the vectors measured, each with the digest of its response: runs
    /// always, durations, CPU and memory when they were queried.
    pub fn from_vectors(
        runs: (Vector, String),
        durations: Option<(Vector, String)>,
        cpu: Option<(Vector, String)>,
        memory: Option<(Vector, String)>,
    ) -> Self {
        let (mut runs, runs_digest) = runs;
        let mut warnings = std::mem::take(&mut runs.warnings);
        let mut take = |v: Option<(Vector, String)>| {
            v.map(|(mut v, d)| {
                warnings.append(&mut v.warnings);
                (v, d)
            })
        };
        let (durations, cpu, memory) = (take(durations), take(cpu), take(memory));
        let (durations_digest, cpu_digest, memory_digest) = (
            durations.as_ref().map(|v| v.1.clone()),
            cpu.as_ref().map(|v| v.1.clone()),
            memory.as_ref().map(|v| v.1.clone()),
        );
        Self {
            volumes: volumes_of(
                runs,
                durations.map(|v| v.0),
                cpu.map(|v| v.0),
                memory.map(|v| v.0),
            ),
            runs_digest,
            durations_digest,
            cpu_digest,
            memory_digest,
            warnings,
        }
    }
}

/// The demand terms of one run, from the vectors that were measured: runs always, the
/// others when their query or file was given.
pub fn volumes_of(
    runs: Vector,
    durations: Option<Vector>,
    cpu: Option<Vector>,
    memory: Option<Vector>,
) -> Volumes {
    let scaled = |v: Option<Vector>, m: Measure| {
        v.map(|v| {
            v.values
                .into_iter()
                .map(|(k, x)| (k, x / m.per_unit()))
                .collect()
        })
    };
    Volumes {
        runs: runs.values,
        hours: scaled(durations, Measure::Seconds),
        cpu_hours: scaled(cpu, Measure::CpuSeconds),
        memory_gib_hours: scaled(memory, Measure::ByteSeconds),
    }
}

/// A parsed vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    /// The value of each job (its series summed).
    pub values: BTreeMap<String, f64>,
    /// Evaluation time of the query (seconds since the epoch), from the samples.
    pub time: Option<f64>,
    /// Prometheus' warnings about the query, as it gave them.
    pub warnings: Vec<String>,
}

/// Why a vector response cannot become demand.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Gzipped, but it does not decompress (or not within a document's bound).
    #[error("not a Prometheus query response: cannot gunzip")]
    Gunzip(#[source] std::io::Error),
    /// Not JSON, or not in the shape of a query response.
    #[error("not a Prometheus query response")]
    Shape(#[source] serde_json::Error),
    /// A successful response without its `data`.
    #[error("not a Prometheus query response: no data")]
    NoData,
    /// Prometheus answered with an error: its status, type and message.
    #[error("the query failed: {0}")]
    Failed(String),
    /// A result of another type (a scalar, a matrix, ...): the query is not a vector query.
    #[error("expected resultType vector, found {0}")]
    NotVector(String),
    /// A sample that cannot be demand: no job, not a number, not finite and non-negative.
    #[error("sample {index}: {message}")]
    Sample {
        /// Its place in the result, from 0.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// No sample at all.
    #[error("the vector is empty: refusing to treat every job as weightless")]
    Empty,
}

/// Parses a vector response; every value must be finite and non-negative, every series
/// must carry a `job_name`, and an empty vector is an error (it is suspicious, F2/§7).
/// Several series of one job are summed.
pub fn parse_vector(bytes: &[u8]) -> Result<Vector, VolumeError> {
    let bytes = maybe_gunzip(bytes).map_err(VolumeError::Gunzip)?;
    let resp: Response = serde_json::from_slice(&bytes).map_err(VolumeError::Shape)?;
    if resp.status != "success" {
        return Err(VolumeError::Failed(format!(
            "status {}: {} {}",
            resp.status,
            resp.error_type.unwrap_or_default(),
            resp.error.unwrap_or_default()
        )));
    }
    let data = resp.data.ok_or(VolumeError::NoData)?;
    if data.result_type != "vector" {
        return Err(VolumeError::NotVector(data.result_type));
    }
    let result: Vec<Sample> = serde_json::from_value(data.result).map_err(VolumeError::Shape)?;
    if result.is_empty() {
        return Err(VolumeError::Empty);
    }
    let mut values: Vec<(String, f64, usize)> = Vec::with_capacity(result.len());
    let mut time = None;
    for (index, s) in result.into_iter().enumerate() {
        let err = |message: String| VolumeError::Sample { index, message };
        let name = s
            .metric
            .job_name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("no job_name label".to_owned()))?;
        let v: f64 = s
            .value
            .1
            .parse()
            .map_err(|_| err(format!("{name}: value {:?} is not a number", s.value.1)))?;
        if !v.is_finite() || v < 0.0 {
            return Err(err(format!(
                "{name}: value {v} is not finite and non-negative"
            )));
        }
        values.push((name, v, index));
        time.get_or_insert(s.value.0);
    }
    // Sorting once and building the map from sorted entries is much cheaper than tens of
    // thousands of inserts. Series with the same job_name (several label sets) are summed,
    // as HEAD's queryJobValues does.
    values.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    let mut summed: Vec<(String, f64)> = Vec::with_capacity(values.len());
    for (name, v, index) in values {
        match summed.last_mut() {
            Some((last, total)) if *last == name => {
                *total += v;
                if !total.is_finite() {
                    return Err(VolumeError::Sample {
                        index,
                        message: format!("{name}: the sum of its series is not finite"),
                    });
                }
            }
            _ => summed.push((name, v)),
        }
    }
    Ok(Vector {
        values: summed.into_iter().collect(),
        time,
        warnings: resp.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_vector() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job_name":"a"},"value":[1655683200,"6.5"]},
            {"metric":{"job_name":"b"},"value":[1655683200,"0"]}]}}"#;
        let v = parse_vector(body).unwrap();
        assert_eq!(v.values["a"], 6.5);
        assert_eq!(v.values["b"], 0.0);
        assert_eq!(v.time, Some(1_655_683_200.0));
    }

    #[test]
    fn series_of_one_job_are_summed_as_head_does() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job_name":"b","state":"x"},"value":[1,"1.5"]},
            {"metric":{"job_name":"a"},"value":[1,"1"]},
            {"metric":{"job_name":"b","state":"y"},"value":[1,"2"]}]}}"#;
        let v = parse_vector(body).unwrap();
        assert_eq!(v.values["b"], 3.5);
        assert_eq!(v.values.len(), 2);
        let huge = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job_name":"b"},"value":[1,"1e308"]},
            {"metric":{"job_name":"b"},"value":[1,"1.7e308"]}]}}"#;
        let e = parse_vector(huge).unwrap_err().to_string();
        assert!(
            e.contains("sample 1: b: the sum of its series is not finite"),
            "{e}"
        );
    }

    #[test]
    fn rejects_what_must_not_become_demand() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#, "failed"),
            (br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#, "vector"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#, "empty"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#, "job_name"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job_name":"a"},"value":[1,"NaN"]}]}}"#, "finite"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job_name":"a"},"value":[1,"-3"]}]}}"#, "non-negative"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job_name":"a"},"value":[1,"Infinity"]}]}}"#, "finite"),
        ];
        for (body, want) in cases {
            let e = parse_vector(body).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
    }
}
