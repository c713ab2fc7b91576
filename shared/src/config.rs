//! Reading typed configuration from environment variables, collecting every problem at once.
//!
//! Libraries never read `std::env` themselves: a binary passes a lookup function (the real
//! environment in `main`, a map in tests), so configurations are testable in parallel.

use std::fmt;
use std::str::FromStr;

/// One bad or missing variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableError {
    /// Name of the environment variable, e.g. `OUTPUT_BUCKET`.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order the variables were read.
    pub problems: Vec<VariableError>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", p.variable, p.problem)?;
        }
        Ok(())
    }
}

/// Reads variables through a lookup function and remembers every problem.
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<VariableError>,
}

impl<'a> Env<'a> {
    /// Reads through `lookup` (e.g. `&|name| std::env::var(name).ok()`).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env {
            lookup,
            problems: Vec::new(),
        }
    }

    /// Records a problem with `variable`.
    pub fn problem(&mut self, variable: &'static str, problem: impl Into<String>) {
        self.problems.push(VariableError {
            variable,
            problem: problem.into(),
        });
    }

    /// The value, if set and not blank.
    pub fn optional(&mut self, variable: &'static str) -> Option<String> {
        (self.lookup)(variable).filter(|v| !v.trim().is_empty())
    }

    /// The value; a problem if unset or blank.
    pub fn required(&mut self, variable: &'static str) -> String {
        match self.optional(variable) {
            Some(value) => value,
            None => {
                self.problem(variable, "is required but not set");
                String::new()
            }
        }
    }

    /// A parsed value, or `default` when unset; a problem if unparsable or outside `valid`.
    pub fn parsed<T>(
        &mut self,
        variable: &'static str,
        default: T,
        valid: impl Fn(&T) -> Result<(), String>,
    ) -> T
    where
        T: FromStr + Clone,
        T::Err: fmt::Display,
    {
        let Some(text) = self.optional(variable) else {
            return default;
        };
        match text.trim().parse::<T>() {
            Ok(value) => match valid(&value) {
                Ok(()) => value,
                Err(problem) => {
                    self.problem(variable, format!("is `{text}`: {problem}"));
                    default
                }
            },
            Err(e) => {
                self.problem(variable, format!("is `{text}`: {e}"));
                default
            }
        }
    }

    /// A required parsed value.
    pub fn required_parsed<T>(
        &mut self,
        variable: &'static str,
        valid: impl Fn(&T) -> Result<(), String>,
    ) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let text = self.required(variable);
        if text.is_empty() {
            return None;
        }
        match text.trim().parse::<T>() {
            Ok(value) => match valid(&value) {
                Ok(()) => Some(value),
                Err(problem) => {
                    self.problem(variable, format!("is `{text}`: {problem}"));
                    None
                }
            },
            Err(e) => {
                self.problem(variable, format!("is `{text}`: {e}"));
                None
            }
        }
    }

    /// A boolean (`true`/`false`, `1`/`0`, `yes`/`no`), or `default` when unset.
    pub fn flag(&mut self, variable: &'static str, default: bool) -> bool {
        match self
            .optional(variable)
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => default,
            Some(v) if ["true", "1", "yes"].contains(&v.as_str()) => true,
            Some(v) if ["false", "0", "no"].contains(&v.as_str()) => false,
            Some(v) => {
                self.problem(variable, format!("is `{v}`: expected true or false"));
                default
            }
        }
    }

    /// Ok if no problem was recorded.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// Checks that an integer lies in `min..=max`.
pub fn in_range<T: PartialOrd + fmt::Display>(min: T, max: T) -> impl Fn(&T) -> Result<(), String> {
    move |v| {
        if *v < min || *v > max {
            Err(format!("must be between {min} and {max}"))
        } else {
            Ok(())
        }
    }
}

/// Accepts any value.
pub fn any<T>(_: &T) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_problem_is_named() {
        let vars: HashMap<&str, &str> =
            HashMap::from([("A", "x"), ("B", "70000"), ("C", " "), ("F", "maybe")]);
        let lookup = |name: &str| vars.get(name).map(|v| v.to_string());
        let mut env = Env::new(&lookup);
        assert_eq!(env.parsed::<u32>("A", 5, any), 5);
        assert_eq!(env.parsed::<u32>("B", 5, in_range(1, 1000)), 5);
        assert_eq!(env.required("C"), "");
        assert_eq!(env.required_parsed::<u32>("D", any), None);
        assert_eq!(env.parsed::<u32>("E", 7, any), 7);
        assert!(!env.flag("F", false));
        let err = env.finish().unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(names, ["A", "B", "C", "D", "F"]);
        let text = err.to_string();
        assert!(
            text.contains("B is `70000`: must be between 1 and 1000"),
            "{text}"
        );
        assert!(text.contains("C is required but not set"), "{text}");
    }
}
