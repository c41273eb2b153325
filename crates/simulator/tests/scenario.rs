use std::path::Path;

use cartero_simulator::{Scenario, ScenarioError, Style};

#[test]
fn unknown_key_is_named_with_its_line() {
    let toml =
        "seed = 1\n[[provider]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\nmax_conections = 3\n";
    let err = Scenario::parse(toml).unwrap_err();
    assert!(matches!(err, ScenarioError::Parse(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("max_conections"), "{msg}");
    assert!(msg.contains("line 5"), "{msg}");
}

#[test]
fn non_loopback_listen_is_refused() {
    for addr in ["10.0.0.1:25", "0.0.0.0:2525", "[::]:25", "192.168.1.2:25"] {
        let toml = format!("[[provider]]\nname = \"x\"\nlisten = \"{addr}\"\n");
        let err = Scenario::parse(&toml).unwrap_err();
        assert!(
            matches!(err, ScenarioError::NotLoopback { .. }),
            "{addr}: {err:?}"
        );
        assert!(err.to_string().contains("not loopback"), "{err}");
    }
    for addr in ["127.0.0.9:2525", "[::1]:2525"] {
        let toml = format!("[[provider]]\nname = \"x\"\nlisten = \"{addr}\"\n");
        Scenario::parse(&toml).unwrap();
    }
}

#[test]
fn bad_values_are_refused() {
    let cases = [
        ("random_4xx = 1.5", "random_4xx"),
        ("max_connections = 0", "max_connections"),
        ("greylist = \"soon\"", "greylist"),
        ("style = \"hotmail\"", "hotmail"),
    ];
    for (line, word) in cases {
        let toml = format!("[[provider]]\nname = \"x\"\nlisten = \"127.0.0.1:0\"\n{line}\n");
        let err = Scenario::parse(&toml).unwrap_err().to_string();
        assert!(err.contains(word), "{line}: {err}");
    }
    let dup = "[[provider]]\nname = \"x\"\nlisten = \"127.0.0.1:0\"\n[[provider]]\nname = \"x\"\nlisten = \"127.0.0.2:0\"\n";
    assert!(
        Scenario::parse(dup)
            .unwrap_err()
            .to_string()
            .contains("duplicate")
    );
}

#[test]
fn example_scenario_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/four-providers.toml");
    let s = Scenario::load(&path).unwrap();
    assert_eq!(s.providers.len(), 4);
    assert_eq!(s.providers[0].style, Style::Gmail);
    assert!(s.providers.iter().all(|p| p.listen.ip().is_loopback()));
}
