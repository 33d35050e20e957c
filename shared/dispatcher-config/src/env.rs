//! Reading variables: the one place the process environment is read, and the errors that
//! name the variable at fault.

use std::time::Duration;

/// A variable that is missing or cannot be read, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable that must be set is not.
    #[error("{var} is required")]
    Missing {
        /// The variable.
        var: &'static str,
    },
    /// A variable whose value cannot be used.
    #[error("{var}={value:?}: {message}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// The AWS store needs both of its variables.
    #[error("{present} is set but {missing} is not: the AWS store needs both")]
    Incomplete {
        /// The variable that is set.
        present: &'static str,
        /// The one that is not.
        missing: &'static str,
    },
}

/// Where a secret comes from: a Secrets Manager ARN in AWS, a plain variable locally.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The ARN of a Secrets Manager secret (`*_ARN`), read when needed.
    Arn(String),
    /// The value itself (a local run).
    Value(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Arn(a) => write!(f, "Arn({a})"),
            Secret::Value(_) => f.write_str("Value(..)"),
        }
    }
}

/// Reads variables from a source (the process environment, or a map in tests).
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

/// The process environment: the only reader of it in the workspace.
pub fn process() -> Env<fn(&str) -> Option<String>> {
    Env(|k| std::env::var(k).ok())
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The variable's value; `None` when unset or blank.
    pub fn var(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// The variable's value, or an error naming it.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.var(name).ok_or(ConfigError::Missing { var: name })
    }

    /// The variable parsed, or `default` when unset; an error names it and its value.
    pub fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.var(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                var: name,
                value: v,
                message: e.to_string(),
            }),
        }
    }

    /// A duration (`10s`, `2m`), or `default` when unset.
    pub fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v.trim()).map_err(|e| ConfigError::Invalid {
                var: name,
                value: v,
                message: e.to_string(),
            }),
        }
    }

    /// A comma-separated list, or `default` when unset.
    pub fn list(&self, name: &'static str, default: &[&str]) -> Vec<String> {
        match self.var(name) {
            None => default.iter().map(|s| (*s).to_owned()).collect(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// `<name>_ARN` (Secrets Manager) wins over `<name>` (a plain value, for local runs).
    pub fn secret(&self, arn: &'static str, plain: &'static str) -> Option<Secret> {
        self.var(arn)
            .map(Secret::Arn)
            .or_else(|| self.var(plain).map(Secret::Value))
    }
}
