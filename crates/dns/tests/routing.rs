//! MX routing through the real hickory resolver against the in-process test DNS server.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use cartero_dns::testing::{TestDnsServer, Zone};
use cartero_dns::{DnsConfig, DnsError, MxHost, MxResolver, Route, site_name};

fn zones() -> Vec<Zone> {
    vec![
        Zone::new("example.test")
            .mx("example.test", 20, "mx2.example.test")
            .mx("example.test", 10, "MX1.example.test.")
            .mx("example.test", 30, "mx3.example.test")
            .a("mx1.example.test", "127.0.0.1")
            .a("implicit.example.test", "127.0.0.2")
            .a("dual.example.test", "127.0.0.3")
            .aaaa("dual.example.test", "::1")
            .aaaa("v6only.example.test", "::2")
            .null_mx("nullmx.example.test")
            .servfail("broken.example.test")
            // `empty.example.test` exists (a name below it has records) but owns nothing.
            .a("host.empty.example.test", "127.0.0.4")
            .cname("alias.example.test", "example.test")
            .mx("xn--bcher-kva.example.test", 10, "mx1.example.test"),
        Zone::new("shared-a.test")
            .mx("shared-a.test", 10, "aspmx.provider.test")
            .mx("shared-a.test", 20, "alt1.provider.test"),
        Zone::new("shared-b.test")
            .mx("shared-b.test", 5, "ALT1.provider.test")
            .mx("shared-b.test", 10, "aspmx.provider.test")
            .mx("shared-b.test", 15, "aspmx.provider.test"),
    ]
}

async fn setup() -> (TestDnsServer, MxResolver) {
    let server = TestDnsServer::start(zones()).await.unwrap();
    let cfg = DnsConfig {
        nameservers: vec![server.addr()],
        timeout: Duration::from_secs(2),
        attempts: 1,
        ..DnsConfig::default()
    };
    let resolver = MxResolver::new(&cfg).unwrap();
    (server, resolver)
}

fn mx(preference: u16, name: &str) -> MxHost {
    MxHost {
        preference,
        name: name.to_owned(),
    }
}

#[tokio::test]
async fn mx_hosts_in_preference_order() {
    let (_server, resolver) = setup().await;
    let route = resolver.route("Example.Test.").await.unwrap();
    assert_eq!(
        route,
        Route::Mx(vec![
            mx(10, "mx1.example.test"),
            mx(20, "mx2.example.test"),
            mx(30, "mx3.example.test"),
        ])
    );
}

#[tokio::test]
async fn cname_and_idn_domains_route() {
    let (_server, resolver) = setup().await;
    let via_alias = resolver.route("alias.example.test").await.unwrap();
    assert_eq!(
        site_name(&via_alias),
        "mx1.example.test,mx2.example.test,mx3.example.test"
    );
    let idn = resolver.route("bücher.example.test").await.unwrap();
    assert_eq!(idn, Route::Mx(vec![mx(10, "mx1.example.test")]));
}

#[tokio::test]
async fn implicit_mx_when_only_an_address_exists() {
    let (_server, resolver) = setup().await;
    let route = resolver.route("implicit.example.test").await.unwrap();
    assert_eq!(route, Route::Implicit("implicit.example.test".into()));
    assert_eq!(route.hosts(), vec![mx(0, "implicit.example.test")]);
    let v6 = resolver.route("v6only.example.test").await.unwrap();
    assert_eq!(v6, Route::Implicit("v6only.example.test".into()));
}

#[tokio::test]
async fn null_mx_is_permanent() {
    let (_server, resolver) = setup().await;
    let err = resolver.route("nullmx.example.test").await.unwrap_err();
    assert_eq!(
        err,
        DnsError::NullMx {
            domain: "nullmx.example.test".into()
        }
    );
    assert!(err.is_permanent());
}

#[tokio::test]
async fn nxdomain_is_permanent() {
    let (_server, resolver) = setup().await;
    let err = resolver.route("nope.example.test").await.unwrap_err();
    assert_eq!(
        err,
        DnsError::NxDomain {
            domain: "nope.example.test".into()
        }
    );
    assert!(err.is_permanent());
    let err = resolver.addresses("nope.example.test").await.unwrap_err();
    assert!(matches!(err, DnsError::NxDomain { .. }), "{err}");
}

#[tokio::test]
async fn servfail_is_transient() {
    let (server, resolver) = setup().await;
    let err = resolver.route("broken.example.test").await.unwrap_err();
    assert!(matches!(err, DnsError::Transient { .. }), "{err}");
    assert!(!err.is_permanent());
    assert!(server.queries_for("broken.example.test") >= 1);
}

#[tokio::test]
async fn no_mx_and_no_address_is_permanent() {
    let (server, resolver) = setup().await;
    let err = resolver.route("empty.example.test").await.unwrap_err();
    assert_eq!(
        err,
        DnsError::NoAddress {
            domain: "empty.example.test".into()
        }
    );
    assert!(err.is_permanent());
    let types: Vec<String> = server
        .query_log()
        .into_iter()
        .filter(|q| q.name == "empty.example.test")
        .map(|q| q.rtype)
        .collect();
    for rtype in ["MX", "A", "AAAA"] {
        assert!(
            types.iter().any(|t| t == rtype),
            "{rtype} not queried: {types:?}"
        );
    }
}

#[tokio::test]
async fn addresses_a_then_aaaa_and_literals_without_dns() {
    let (server, resolver) = setup().await;
    let ips = resolver.addresses("dual.example.test").await.unwrap();
    let want: Vec<IpAddr> = vec!["127.0.0.3".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(ips, want);
    let v6 = resolver.addresses("v6only.example.test").await.unwrap();
    assert_eq!(v6, vec!["::2".parse::<IpAddr>().unwrap()]);

    let before = server.query_count();
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(resolver.addresses("[192.0.2.7]").await.unwrap(), vec![v4]);
    assert_eq!(resolver.addresses("192.0.2.7").await.unwrap(), vec![v4]);
    let lit6 = resolver.addresses("[IPv6:2001:db8::5]").await.unwrap();
    assert_eq!(lit6, vec!["2001:db8::5".parse::<IpAddr>().unwrap()]);
    let route = resolver.route("[192.0.2.7]").await.unwrap();
    assert_eq!(route, Route::Implicit("[192.0.2.7]".into()));
    assert_eq!(server.query_count(), before, "literals must not hit DNS");

    let err = resolver.addresses("empty.example.test").await.unwrap_err();
    assert_eq!(
        err,
        DnsError::NoAddress {
            domain: "empty.example.test".into()
        }
    );
}

#[tokio::test]
async fn domains_sharing_mx_hosts_share_a_site() {
    let (_server, resolver) = setup().await;
    let a = resolver.route("shared-a.test").await.unwrap();
    let b = resolver.route("shared-b.test").await.unwrap();
    assert_ne!(a, b, "preferences differ, routes are not identical");
    assert_eq!(site_name(&a), "alt1.provider.test,aspmx.provider.test");
    assert_eq!(site_name(&a), site_name(&b));
    let other = resolver.route("example.test").await.unwrap();
    assert_ne!(site_name(&a), site_name(&other));
}

#[tokio::test]
async fn invalid_domains_fail_without_a_query() {
    let (server, resolver) = setup().await;
    for bad in [
        "",
        "no_underscore.test",
        "a..b.test",
        "localhost",
        "[not-an-ip]",
    ] {
        let err = resolver.route(bad).await.unwrap_err();
        assert!(
            matches!(err, DnsError::InvalidDomain { .. }),
            "{bad}: {err}"
        );
        assert!(err.is_permanent());
    }
    assert_eq!(server.query_count(), 0);
}

#[tokio::test]
async fn answers_are_cached_positive_and_negative() {
    let (server, resolver) = setup().await;
    let first = resolver.route("example.test").await.unwrap();
    let after_first = server.queries_for("example.test");
    assert!(after_first >= 1);
    let second = resolver.clone().route("example.test").await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        server.queries_for("example.test"),
        after_first,
        "MX not cached"
    );

    resolver.route("implicit.example.test").await.unwrap();
    let implicit = server.queries_for("implicit.example.test");
    resolver.route("implicit.example.test").await.unwrap();
    assert_eq!(
        server.queries_for("implicit.example.test"),
        implicit,
        "NODATA/A not cached"
    );

    resolver.route("nope.example.test").await.unwrap_err();
    let negative = server.queries_for("nope.example.test");
    assert!(negative >= 1);
    resolver.route("nope.example.test").await.unwrap_err();
    assert_eq!(
        server.queries_for("nope.example.test"),
        negative,
        "NXDOMAIN not cached"
    );
}

#[tokio::test]
async fn zero_ttl_is_not_cached() {
    // Counterpart of the caching test: shows the query count does move when the cache
    // may not serve the answer.
    let zone = Zone::new("ttl.test")
        .ttl(0)
        .mx("ttl.test", 10, "mx.ttl.test");
    let server = TestDnsServer::start(vec![zone]).await.unwrap();
    let cfg = DnsConfig {
        nameservers: vec![server.addr()],
        ..DnsConfig::default()
    };
    let resolver = MxResolver::new(&cfg).unwrap();
    resolver.route("ttl.test").await.unwrap();
    let first = server.queries_for("ttl.test");
    resolver.route("ttl.test").await.unwrap();
    assert!(server.queries_for("ttl.test") > first);
}

#[tokio::test]
async fn silent_nameserver_is_transient_within_timeout() {
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let timeout = Duration::from_millis(300);
    let cfg = DnsConfig {
        nameservers: vec![silent.local_addr().unwrap()],
        timeout,
        attempts: 1,
        ..DnsConfig::default()
    };
    let resolver = MxResolver::new(&cfg).unwrap();
    let started = Instant::now();
    let err = resolver.route("example.test").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, DnsError::Transient { .. }), "{err}");
    // The resolver's own bound is timeout × (attempts + 1). The slack is for a loaded machine: the
    // test is about a bound existing, and without ours the library default (5 s per try) exceeds it.
    assert!(
        elapsed < timeout * 2 + Duration::from_secs(3),
        "took {elapsed:?}"
    );
    let mut buf = [0u8; 512];
    let (len, _) = silent.try_recv_from(&mut buf).unwrap();
    assert!(len > 12, "the query did reach the silent server");
}

#[tokio::test]
async fn invalid_zone_description_is_reported() {
    let bad = Zone::new("bad.test").a("host.bad.test", "not-an-ip");
    let err = TestDnsServer::start(vec![bad]).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
