//! The `buildFarm` section of `_config.yaml`: what a plan implies, and the section
//! replaced (or added) in the text, no other byte changed.

use std::collections::BTreeMap;

use dispatcher_core::Plan;
use dispatcher_core::plan::ClusterState;

use super::document::Document;
use super::yaml_scalar;

/// Cloud -> cluster -> file basenames.
type BuildFarm = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// Replaces (or adds) the top-level `buildFarm` section. `farm` is cloud -> cluster ->
/// file basenames; it is written sorted, in the layout Go's marshaller uses.
pub fn rewrite_build_farm(text: &str, farm: &BuildFarm) -> String {
    let doc = Document::new(text);
    let block = section(farm, doc.eol());
    let ls = &doc.lines;
    let top = (0..ls.len()).find(|&i| {
        ls[i].indent == 0 && !ls[i].is_blank() && doc.entry(i).is_some_and(|e| e.key == "buildFarm")
    });
    // Replaced from its key to the next line at the top (a key or a comment), blank lines
    // before that kept; or added before the first top-level key.
    let (start, end) = match top {
        Some(t) => {
            let mut end = (t + 1..ls.len())
                .find(|&i| ls[i].indent == 0 && !ls[i].text.is_empty())
                .unwrap_or(ls.len());
            while end > t + 1 && ls[end - 1].text.is_empty() {
                end -= 1;
            }
            let e = ls.get(end).map_or(text.len(), |l| l.start);
            (ls[t].start, e)
        }
        None => {
            let at = ls
                .iter()
                .find(|l| l.indent == 0 && !l.is_blank() && l.text != "---")
                .map_or(text.len(), |l| l.start);
            (at, at)
        }
    };
    let mut out = String::with_capacity(text.len() + block.len());
    out.push_str(&text[..start]);
    out.push_str(&block);
    out.push_str(&text[end..]);
    out
}

/// The `buildFarm` section as Go's marshaller writes it (empty for no clouds).
fn section(farm: &BuildFarm, eol: &str) -> String {
    let mut block = String::new();
    if farm.is_empty() {
        return block;
    }
    block.push_str("buildFarm:");
    block.push_str(eol);
    for (cloud, clusters) in farm {
        block.push_str(&format!("  {}:{eol}", yaml_scalar(cloud)));
        for (cluster, files) in clusters {
            if files.is_empty() {
                block.push_str(&format!("    {}: {{}}{eol}", yaml_scalar(cluster)));
                continue;
            }
            block.push_str(&format!(
                "    {}:{eol}      filenames:{eol}",
                yaml_scalar(cluster)
            ));
            let mut files = files.clone();
            files.sort();
            files.dedup();
            for f in files {
                block.push_str(&format!("      - {}{eol}", yaml_scalar(&f)));
            }
        }
    }
    block
}

/// The `buildFarm` section a plan implies: every file outside the group paths, by basename,
/// under its file-level cluster, for clusters that balance (active) or keep their files
/// (cordoned); other clusters are left out, as the Go dispatcher drops disabled ones.
pub fn build_farm_of(plan: &Plan) -> BuildFarm {
    let mut farm = BuildFarm::new();
    for (name, c) in &plan.clusters {
        if matches!(c.state, ClusterState::Active | ClusterState::Cordoned)
            && let Some(p) = &c.provider
        {
            farm.entry(p.clone())
                .or_default()
                .entry(name.clone())
                .or_default();
        }
    }
    for (path, f) in &plan.files {
        let Some(c) = f.cluster.as_deref() else {
            continue;
        };
        if f.group_path {
            continue;
        }
        if let Some(p) = plan.clusters.get(c).and_then(|e| e.provider.as_ref())
            && let Some(list) = farm.get_mut(p).and_then(|m| m.get_mut(c))
        {
            list.push(dispatcher_core::model::basename(path).to_owned());
        }
    }
    farm
}

/// `_config.yaml`'s new text under a plan, if its `buildFarm` section changes.
pub fn config_for_plan(text: &str, plan: &Plan) -> Option<String> {
    let new = rewrite_build_farm(text, &build_farm_of(plan));
    (new != text).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_farm_is_replaced_and_nothing_else() {
        let text = "buildFarm:\n  aws:\n    build01:\n      filenames:\n      - b.yaml\n      - a.yaml\n\ndefault: build01\n# keep me\ngroups: {}\n";
        let mut farm = BTreeMap::new();
        farm.insert(
            "aws".to_owned(),
            BTreeMap::from([
                (
                    "build01".to_owned(),
                    vec!["c.yaml".to_owned(), "a.yaml".to_owned()],
                ),
                ("build03".to_owned(), vec![]),
            ]),
        );
        let out = rewrite_build_farm(text, &farm);
        assert_eq!(
            out,
            "buildFarm:\n  aws:\n    build01:\n      filenames:\n      - a.yaml\n      - c.yaml\n    build03: {}\n\ndefault: build01\n# keep me\ngroups: {}\n"
        );
        let again = rewrite_build_farm(&out, &farm);
        assert_eq!(again, out, "idempotent");
    }

    #[test]
    fn build_farm_is_added_when_missing() {
        let text = "# header\ndefault: build01\n";
        let farm = BTreeMap::from([(
            "gcp".to_owned(),
            BTreeMap::from([("build02".to_owned(), vec!["x.yaml".to_owned()])]),
        )]);
        let out = rewrite_build_farm(text, &farm);
        assert_eq!(
            out,
            "# header\nbuildFarm:\n  gcp:\n    build02:\n      filenames:\n      - x.yaml\ndefault: build01\n"
        );
    }
}
