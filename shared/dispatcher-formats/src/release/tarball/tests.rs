use std::io::Write;

use super::super::{Limits, ReadOptions, Release, ReleaseError, Source, read};

const JOB: &str = "periodics:\n- name: periodic-a\n  agent: kubernetes\n";

/// A tar of `(path, bytes)` regular files, with its end-of-archive marker.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Written raw: `append_data` refuses `..` and absolute paths, which is the point.
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn read_gz(gz: Vec<u8>, limits: Limits) -> Result<Release, ReleaseError> {
    let opts = ReadOptions {
        limits,
        ..ReadOptions::default()
    };
    read(
        Source::Stream(Box::new(std::io::Cursor::new(gz))),
        opts,
        &|| {},
    )
}

fn read_tar(files: &[(&str, &[u8])]) -> Result<Release, ReleaseError> {
    read_gz(gzip(&tar_of(files)), Limits::default())
}

fn whole() -> Vec<u8> {
    tar_of(&[
        (
            "r/core-services/sanitize-prow-jobs/_config.yaml",
            b"default: build01\n",
        ),
        ("r/ci-operator/jobs/o/a/a-periodics.yaml", JOB.as_bytes()),
        (
            "r/ci-operator/jobs/o/b/b-periodics.yaml",
            JOB.replace("-a", "-b").as_bytes(),
        ),
    ])
}

/// Why the archive was refused, as the edges print it: the error and its causes.
fn refusal(r: Result<Release, ReleaseError>) -> String {
    dispatcher_core::chain(&r.expect_err("the archive must be refused"))
}

#[test]
fn a_whole_archive_reads_in_either_layout() {
    let rooted = read_gz(gzip(&whole()), Limits::default()).unwrap();
    assert_eq!(rooted.files.len(), 2);
    assert!(rooted.config.is_some());
    let bare = read_tar(&[
        ("README.md", b"# release\n"),
        ("ci-operator/jobs/o/a/a-periodics.yaml", JOB.as_bytes()),
    ])
    .unwrap();
    assert_eq!(bare.files[0].path, "ci-operator/jobs/o/a/a-periodics.yaml");
}

#[test]
fn an_archive_cut_at_a_member_boundary_is_refused() {
    let tar = whole();
    // Header and data of the first two members (one 512-byte block of data each).
    let cut = &tar[..4 * 512];
    let e = refusal(read_gz(gzip(cut), Limits::default()));
    assert!(e.contains("incomplete archive"), "{e}");
    assert!(e.contains("without its end-of-archive marker"), "{e}");
    assert!(e.contains("r/ci-operator/jobs/o/a/a-periodics.yaml"), "{e}");
}

#[test]
fn a_gzip_stream_without_its_trailer_or_with_a_bad_checksum_is_refused() {
    let gz = gzip(&whole());
    let e = refusal(read_gz(gz[..gz.len() - 8].to_vec(), Limits::default()));
    assert!(e.contains("gzip stream is not whole"), "{e}");
    let mut bad = gz.clone();
    let n = bad.len();
    bad[n - 6] ^= 1;
    let e = refusal(read_gz(bad, Limits::default()));
    assert!(e.contains("checksum"), "{e}");
    let e = refusal(read_gz(gz[..gz.len() / 2].to_vec(), Limits::default()));
    assert!(e.contains("incomplete") || e.contains("end"), "{e}");
}

#[test]
fn data_after_the_end_marker_is_refused() {
    let mut tar = whole();
    tar.extend_from_slice(b"trailing data that no tar writes");
    let e = refusal(read_gz(gzip(&tar), Limits::default()));
    assert!(e.contains("data after the end-of-archive marker"), "{e}");
}

#[test]
fn members_that_escape_or_double_or_add_a_root_are_refused_by_name() {
    for (files, member, want) in [
        (
            vec![("r/ci-operator/jobs/../../etc/x.yaml", JOB.as_bytes())],
            "r/ci-operator/jobs/../../etc/x.yaml",
            "escapes",
        ),
        (
            vec![("/ci-operator/jobs/o/x.yaml", JOB.as_bytes())],
            "/ci-operator/jobs/o/x.yaml",
            "escapes",
        ),
        (
            vec![
                ("r/ci-operator/jobs/o/x.yaml", JOB.as_bytes()),
                ("s/ci-operator/jobs/o/y.yaml", JOB.as_bytes()),
            ],
            "s/ci-operator/jobs/o/y.yaml",
            "second top-level folder",
        ),
        (
            vec![
                (
                    "r/core-services/sanitize-prow-jobs/_config.yaml",
                    b"default: a\n".as_slice(),
                ),
                (
                    "r/core-services/sanitize-prow-jobs/_config.yaml",
                    b"default: b\n".as_slice(),
                ),
            ],
            "r/core-services/sanitize-prow-jobs/_config.yaml",
            "twice",
        ),
    ] {
        let e = refusal(read_tar(&files));
        assert!(
            e.contains(&format!("{member}: ")),
            "{e} should name {member}"
        );
        assert!(e.contains(want), "{e}");
    }
    // A duplicate of a file the dispatcher does not read is no concern of ours.
    assert!(read_tar(&[("r/OWNERS", b"a".as_slice()), ("r/OWNERS", b"b".as_slice())]).is_ok());
}

#[test]
fn a_link_where_a_job_file_should_be_is_refused_and_elsewhere_ignored() {
    let link = |path: &str| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, path, "../../etc/passwd").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(JOB.len() as u64);
        h.set_cksum();
        b.append_data(
            &mut h,
            "r/ci-operator/jobs/o/a/a-periodics.yaml",
            JOB.as_bytes(),
        )
        .unwrap();
        b.into_inner().unwrap()
    };
    let e = refusal(read_gz(
        gzip(&link("r/ci-operator/jobs/o/l-periodics.yaml")),
        Limits::default(),
    ));
    assert!(e.contains("r/ci-operator/jobs/o/l-periodics.yaml: "), "{e}");
    assert!(e.contains("symbolic link"), "{e}");
    assert!(read_gz(gzip(&link("r/docs/link.md")), Limits::default()).is_ok());
}

#[test]
fn files_and_archives_over_their_limits_are_refused_before_they_are_read() {
    let big = vec![b'#'; 10_000];
    let files = [("r/ci-operator/jobs/o/big-periodics.yaml", big.as_slice())];
    let small_files = Limits {
        member_bytes: 4096,
        ..Limits::default()
    };
    let e = refusal(read_gz(gzip(&tar_of(&files)), small_files));
    assert!(
        e.contains("r/ci-operator/jobs/o/big-periodics.yaml: 10000 bytes"),
        "{e}"
    );
    let small_archive = Limits {
        archive_bytes: 8192,
        ..Limits::default()
    };
    let e = refusal(read_gz(gzip(&tar_of(&files)), small_archive));
    assert!(e.contains("archive limit"), "{e}");
}

#[test]
fn a_broken_header_names_the_member_before_it() {
    let mut tar = whole();
    // The second member's header: a checksum that does not match.
    tar[2 * 512 + 148] ^= 0x01;
    let e = refusal(read_gz(gzip(&tar), Limits::default()));
    assert!(
        e.contains("the member after r/core-services/sanitize-prow-jobs/_config.yaml"),
        "{e}"
    );
}
