//! The tables follow distribution/reference's reference_test.go and
//! normalize_test.go, adapted to normalised parsing.

use super::*;
use proptest::prelude::*;

const SHA: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// (input, full form, familiar form)
const VALID: &[(&str, &str, &str)] = &[
    (
        "busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
    ),
    (
        "docker/docker",
        "docker.io/docker/docker:latest",
        "docker/docker:latest",
    ),
    (
        "library/debian",
        "docker.io/library/debian:latest",
        "debian:latest",
    ),
    (
        "docker.io/debian",
        "docker.io/library/debian:latest",
        "debian:latest",
    ),
    (
        "index.docker.io/docker/docker",
        "docker.io/docker/docker:latest",
        "docker/docker:latest",
    ),
    (
        "index.docker.io/debian:12",
        "docker.io/library/debian:12",
        "debian:12",
    ),
    (
        "other/library",
        "docker.io/other/library:latest",
        "other/library:latest",
    ),
    (
        "docker.io/library/library/x",
        "docker.io/library/library/x:latest",
        "library/library/x:latest",
    ),
    (
        "127.0.0.1:5000/docker/docker",
        "127.0.0.1:5000/docker/docker:latest",
        "127.0.0.1:5000/docker/docker:latest",
    ),
    (
        "192.168.0.1",
        "docker.io/library/192.168.0.1:latest",
        "192.168.0.1:latest",
    ),
    (
        "192.168.0.1:80",
        "docker.io/library/192.168.0.1:80",
        "192.168.0.1:80",
    ),
    (
        "192.168.0.1:8/debian",
        "192.168.0.1:8/debian:latest",
        "192.168.0.1:8/debian:latest",
    ),
    (
        "localhost/debian",
        "localhost/debian:latest",
        "localhost/debian:latest",
    ),
    (
        "localhost:5000/x:y",
        "localhost:5000/x:y",
        "localhost:5000/x:y",
    ),
    (
        "test_com",
        "docker.io/library/test_com:latest",
        "test_com:latest",
    ),
    (
        "test.com:tag",
        "docker.io/library/test.com:tag",
        "test.com:tag",
    ),
    (
        "test.com:5000",
        "docker.io/library/test.com:5000",
        "test.com:5000",
    ),
    (
        "test:5000/repo:tag",
        "test:5000/repo:tag",
        "test:5000/repo:tag",
    ),
    (
        "foo/foo_bar.com:8080",
        "docker.io/foo/foo_bar.com:8080",
        "foo/foo_bar.com:8080",
    ),
    (
        "lowercase:Uppercase",
        "docker.io/library/lowercase:Uppercase",
        "lowercase:Uppercase",
    ),
    ("Foo.com/bar", "Foo.com/bar:latest", "Foo.com/bar:latest"),
    ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
    (
        "a__b-c--d.e_f:1.0",
        "docker.io/library/a__b-c--d.e_f:1.0",
        "a__b-c--d.e_f:1.0",
    ),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io/test.example.com/my-app:test.example.com",
    ),
    (
        "xn--n3h.com/myimage:xn--n3h.com",
        "xn--n3h.com/myimage:xn--n3h.com",
        "xn--n3h.com/myimage:xn--n3h.com",
    ),
    (
        "[2001:db8::1]/repo",
        "[2001:db8::1]/repo:latest",
        "[2001:db8::1]/repo:latest",
    ),
    (
        "[2001:db8::1]:5000/repo:tag",
        "[2001:db8::1]:5000/repo:tag",
        "[2001:db8::1]:5000/repo:tag",
    ),
    (
        "[::1]:5000/repo",
        "[::1]:5000/repo:latest",
        "[::1]:5000/repo:latest",
    ),
    (
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest",
    ),
];

#[test]
fn valid_references_normalise_like_docker() {
    for (input, full, familiar) in VALID {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.to_string(), *full, "full form of {input}");
        assert_eq!(r.familiar(), *familiar, "familiar form of {input}");
        assert_eq!(Reference::parse(full).unwrap(), r, "reparse of {full}");
    }
}

#[test]
fn fields_are_split() {
    let r = Reference::parse(&format!("host:5000/ns/name:tag@{SHA}")).unwrap();
    assert_eq!(r.domain(), "host:5000");
    assert_eq!(r.path(), "ns/name");
    assert_eq!(r.tag(), Some("tag"));
    assert_eq!(r.digest().unwrap().to_string(), SHA);
    assert_eq!(r.name(), "host:5000/ns/name");
    assert_eq!(r.familiar_name(), "host:5000/ns/name");
    assert_eq!(r.to_string(), format!("host:5000/ns/name:tag@{SHA}"));

    let r = Reference::parse("busybox").unwrap();
    assert_eq!(r.name(), "docker.io/library/busybox");
    assert_eq!(r.familiar_name(), "busybox");
}

#[test]
fn digest_without_tag_gets_no_default_tag() {
    let r = Reference::parse(&format!("busybox@{SHA}")).unwrap();
    assert_eq!(r.tag(), None);
    assert_eq!(r.to_string(), format!("docker.io/library/busybox@{SHA}"));
    assert_eq!(r.familiar(), format!("busybox@{SHA}"));
}

#[test]
fn parse_name_adds_no_tag() {
    let r = Reference::parse_name("busybox").unwrap();
    assert_eq!(r.tag(), None);
    assert_eq!(r.to_string(), "docker.io/library/busybox");
    assert_eq!(r.with_tag("1.36").unwrap().familiar(), "busybox:1.36");
    assert_eq!(r.with_tag("-bad"), Err(ReferenceError::InvalidTag));
    let d: Digest = SHA.parse().unwrap();
    assert_eq!(r.with_digest(d).familiar(), format!("busybox@{SHA}"));
}

#[test]
fn invalid_references_fail_with_dockers_errors() {
    use ReferenceError::*;
    let long_ok = format!("{}a:tag", "a/".repeat(127));
    assert!(
        Reference::parse(&long_ok).is_ok(),
        "a 255-character path is allowed"
    );
    let cases: Vec<(String, ReferenceError)> = vec![
        ("".into(), Empty),
        (":justtag".into(), InvalidFormat),
        (format!("@{SHA}"), InvalidFormat),
        ("https://github.com/docker/docker".into(), InvalidFormat),
        ("-docker".into(), InvalidFormat),
        ("-docker/docker".into(), InvalidFormat),
        ("docker///docker".into(), InvalidFormat),
        ("docker.io/docker///docker".into(), InvalidFormat),
        ("aa/asdf$$^/aa".into(), InvalidFormat),
        ("foo:".into(), InvalidFormat),
        ("foo:-tag".into(), InvalidFormat),
        (format!("foo:{}", "t".repeat(129)), InvalidFormat),
        ("a..b".into(), InvalidFormat),
        ("a___b".into(), InvalidFormat),
        ("a-".into(), InvalidFormat),
        ("repo@sha256:abc".into(), InvalidFormat),
        ("[2001:db8::1]".into(), InvalidFormat),
        ("[2001:db8::1]:5000".into(), InvalidFormat),
        ("[fe80::1%eth0]:5000/repo".into(), InvalidFormat),
        ("host:/repo".into(), InvalidFormat),
        ("Uppercase:tag".into(), Uppercase),
        ("docker/Docker".into(), Uppercase),
        ("docker.io/docker/Docker".into(), Uppercase),
        ("test:5000/Uppercase/lowercase:tag".into(), Uppercase),
        (format!("{}a:tag", "a/".repeat(128)), NameTooLong),
        (
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a".into(),
            LooksLikeId("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a".into()),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(Reference::parse(&input), Err(want), "{input:?}");
    }
    // Shaped like a digest but not one berth can check.
    let short = format!("repo@{}", &SHA[..SHA.len() - 1]);
    assert!(matches!(Reference::parse(&short), Err(Digest(_))));
    let algo =
        "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    assert!(matches!(Reference::parse(algo), Err(Digest(_))));
}

/// Docker would fall back to a name with an empty registry here; berth
/// rejects it, since every reference it stores has a registry.
#[test]
fn dotted_first_component_must_be_a_registry() {
    assert_eq!(
        Reference::parse("a_b.c/x"),
        Err(ReferenceError::InvalidFormat)
    );
    assert_eq!(Reference::parse("a.b/x").unwrap().domain(), "a.b");
    assert_eq!(Reference::parse("x/a_b.c").unwrap().path(), "x/a_b.c");
}

#[test]
fn error_messages_are_dockers() {
    assert_eq!(
        Reference::parse("Foo").unwrap_err().to_string(),
        "invalid reference format: repository name must be lowercase"
    );
    assert_eq!(
        Reference::parse("a b").unwrap_err().to_string(),
        "invalid reference format"
    );
}

fn reference_strategy() -> impl Strategy<Value = String> {
    // No '.' here: a first component with one is a registry, and one that
    // is not a valid registry name is rejected (see `dotted_first_component`).
    let component = "[a-z0-9]{1,4}(([_]|__|-{1,2})[a-z0-9]{1,4}){0,2}";
    let domain = prop_oneof![
        Just(String::new()),
        Just("localhost/".to_owned()),
        Just("docker.io/".to_owned()),
        "[a-z0-9]{1,5}\\.[a-z]{2,3}(:[0-9]{1,5})?/",
        "\\[[0-9a-f]{1,4}::[0-9a-f]{0,4}\\](:[0-9]{1,4})?/",
    ];
    let tag = proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}");
    let digest = proptest::option::of("[0-9a-f]{64}");
    (
        domain,
        proptest::collection::vec(component, 1..4),
        tag,
        digest,
    )
        .prop_map(|(domain, path, tag, digest)| {
            let mut s = domain + &path.join("/");
            if let Some(t) = tag {
                s = s + ":" + &t;
            }
            if let Some(d) = digest {
                s = s + "@sha256:" + &d;
            }
            s
        })
}

proptest! {
    #[test]
    fn display_and_familiar_round_trip(s in reference_strategy()) {
        let r = Reference::parse(&s).unwrap();
        prop_assert_eq!(&Reference::parse(&r.to_string()).unwrap(), &r);
        prop_assert_eq!(&Reference::parse(&r.familiar()).unwrap(), &r);
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,80}") {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn reference_like_input_never_panics(s in "[a-zA-Z0-9:/@._\\[\\]-]{0,40}") {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }
}
