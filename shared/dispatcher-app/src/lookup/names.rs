//! A generation's job names laid out for search: sorted, joined into one buffer and lowered
//! into a second, so that a search scans contiguous memory with a SIMD finder instead of
//! visiting tens of thousands of separately allocated strings (a cache miss each: that,
//! not the comparing, was what a search cost).

/// The job names of one generation, built on the first search and kept with the generation.
#[derive(Debug, Default)]
pub(super) struct NameIndex {
    /// The names as they are, each followed by `\n`, in name order.
    names: String,
    /// The same bytes with ASCII letters lowered (job names are ASCII: Prow's own rules).
    lowered: Vec<u8>,
    /// Where each name starts in both.
    starts: Vec<usize>,
}

impl NameIndex {
    pub(super) fn new<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut sorted: Vec<&str> = names.collect();
        sorted.sort_unstable();
        let mut joined = String::with_capacity(sorted.iter().map(|n| n.len() + 1).sum());
        let mut starts = Vec::with_capacity(sorted.len());
        for name in sorted {
            starts.push(joined.len());
            joined.push_str(name);
            joined.push('\n');
        }
        Self {
            lowered: joined.as_bytes().to_ascii_lowercase(),
            names: joined,
            starts,
        }
    }

    /// The names containing `text` (ASCII letters in any case), in name order, at most
    /// `limit`.
    pub(super) fn search(&self, text: &str, limit: usize) -> Vec<&str> {
        // A name holds no line break, so neither can a text found in one; and a text
        // without one cannot match across two names.
        if text.contains('\n') {
            return Vec::new();
        }
        let needle = text.to_ascii_lowercase();
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let mut found = Vec::new();
        let mut from = 0;
        while found.len() < limit && from < self.lowered.len() {
            let Some(hit) = finder.find(&self.lowered[from..]) else {
                break;
            };
            let i = self.starts.partition_point(|&s| s <= from + hit) - 1;
            let end = self.starts.get(i + 1).copied().unwrap_or(self.names.len());
            found.push(&self.names[self.starts[i]..end - 1]);
            // On to the next name: one hit per name.
            from = end;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::NameIndex;

    fn index() -> NameIndex {
        NameIndex::new(
            [
                "pull-ci-Openshift-installer-master-e2e",
                "periodic-ci-openshift-release-master-nightly",
                "branch-ci-openshift-installer-images",
                "e2e",
            ]
            .into_iter(),
        )
    }

    #[test]
    fn a_search_finds_ascii_letters_in_any_case_in_name_order() {
        let i = index();
        assert_eq!(
            i.search("OPENSHIFT-inst", 10),
            [
                "branch-ci-openshift-installer-images",
                "pull-ci-Openshift-installer-master-e2e"
            ]
        );
        assert_eq!(
            i.search("e2e", 10),
            ["e2e", "pull-ci-Openshift-installer-master-e2e"]
        );
        assert_eq!(
            i.search("master", 1),
            ["periodic-ci-openshift-release-master-nightly"]
        );
        assert_eq!(i.search("", 10).len(), 4);
    }

    #[test]
    fn a_search_never_matches_across_two_names() {
        let i = index();
        assert!(i.search("images\ne2e", 10).is_empty());
        // Adjacent in name order: only the separator keeps them apart.
        assert!(i.search("imagese2e", 10).is_empty());
        assert!(i.search("openshift_installer", 10).is_empty());
    }

    #[test]
    fn a_name_with_several_hits_is_found_once() {
        assert_eq!(index().search("i", 10).len(), 3);
    }

    proptest::proptest! {
        /// The index finds what filtering every name would, in the same order.
        #[test]
        fn the_index_agrees_with_filtering_every_name(
            names in proptest::collection::btree_set("[a-cA-C0-9-]{0,12}", 0..40),
            text in "[a-cA-C-]{0,3}",
            limit in 0usize..50,
        ) {
            let i = NameIndex::new(names.iter().map(String::as_str));
            let lowered = text.to_ascii_lowercase();
            let naive: Vec<&str> = names
                .iter()
                .filter(|n| n.to_ascii_lowercase().contains(&lowered))
                .map(String::as_str)
                .take(limit)
                .collect();
            proptest::prop_assert_eq!(i.search(&text, limit), naive);
        }
    }
}
