//! The rule files shipped with the binary. Provider files first (their order does not matter:
//! a host belongs to one provider), the generic rules last.

pub(super) const FILES: &[(&str, &str)] = &[
    ("builtin:gmail.toml", include_str!("../../rules/gmail.toml")),
    ("builtin:yahoo.toml", include_str!("../../rules/yahoo.toml")),
    (
        "builtin:microsoft.toml",
        include_str!("../../rules/microsoft.toml"),
    ),
    (
        "builtin:icloud.toml",
        include_str!("../../rules/icloud.toml"),
    ),
    (
        "builtin:comcast.toml",
        include_str!("../../rules/comcast.toml"),
    ),
    ("builtin:gmx.toml", include_str!("../../rules/gmx.toml")),
    (
        "builtin:orange.toml",
        include_str!("../../rules/orange.toml"),
    ),
    (
        "builtin:mailru.toml",
        include_str!("../../rules/mailru.toml"),
    ),
    ("builtin:qq163.toml", include_str!("../../rules/qq163.toml")),
    ("builtin:zoho.toml", include_str!("../../rules/zoho.toml")),
    (
        "builtin:gateways.toml",
        include_str!("../../rules/gateways.toml"),
    ),
    (
        "builtin:generic.toml",
        include_str!("../../rules/generic.toml"),
    ),
];
