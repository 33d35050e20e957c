//! What the ladder knows about a file: the group paths and `buildFarm` entries claiming it.

use std::fmt;

/// Per-file inputs of the ladder: the group paths and `buildFarm` entries matching it.
#[derive(Debug, Clone)]
pub struct FileFacts<'p, 'a> {
    /// The file's repo-relative path.
    pub path: &'p str,
    /// The length of its basename, which set-based rules pick by.
    pub basename_len: usize,
    /// Group path patterns matching the file: (cluster, the pattern as written).
    pub(super) group_paths: Vec<(&'a str, &'a str)>,
    /// `buildFarm` entries listing the file's basename: (cloud, cluster).
    pub(super) farm: Vec<(&'a str, &'a str)>,
}

/// An entry of the config that claims a file for a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A group's path regex matches the file.
    GroupPath {
        /// The group's cluster.
        cluster: String,
        /// The regex as written.
        pattern: String,
    },
    /// `buildFarm` lists the file's basename.
    BuildFarm {
        /// The cloud it is listed under.
        cloud: String,
        /// The cluster it is listed under.
        cluster: String,
    },
}

impl fmt::Display for Claim {
    /// The entry's key in the config.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::GroupPath { cluster, pattern } => {
                write!(f, "groups.{cluster}.paths {pattern:?}")
            }
            Claim::BuildFarm { cloud, cluster } => write!(f, "buildFarm.{cloud}.{cluster}"),
        }
    }
}

impl FileFacts<'_, '_> {
    /// Whether a group path regex matches the file (then `buildFarm` does not list it).
    pub fn matches_group_path(&self) -> bool {
        !self.group_paths.is_empty()
    }

    /// Every entry that claims the file, in the order of their keys: more than one is an
    /// error (the Go dispatcher aborts).
    pub fn claims(&self) -> Vec<Claim> {
        let mut claims: Vec<Claim> = self
            .group_paths
            .iter()
            .map(|(cluster, pattern)| Claim::GroupPath {
                cluster: (*cluster).to_owned(),
                pattern: (*pattern).to_owned(),
            })
            .chain(self.farm.iter().map(|(cloud, cluster)| Claim::BuildFarm {
                cloud: (*cloud).to_owned(),
                cluster: (*cluster).to_owned(),
            }))
            .collect();
        // By the text people read, which is how the messages have always listed them.
        claims.sort_by_cached_key(ToString::to_string);
        claims
    }

    /// Whether more than one entry claims the file.
    pub fn is_contested(&self) -> bool {
        self.group_paths.len() + self.farm.len() > 1
    }
}
