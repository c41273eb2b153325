//! The HTML the server writes: the login page and the shell of every page. Every value put in
//! is escaped; the pages' data is added by `app.js` with DOM calls, never as markup.

use std::fmt::Write;

/// A page of the dashboard: its path, its title and its entry in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Deliveries,
    Delivery,
    Logs,
    Quarantine,
    Transactional,
    Mta,
}

impl Page {
    /// The name `app.js` dispatches on (`data-page`).
    pub fn name(self) -> &'static str {
        match self {
            Page::Deliveries => "deliveries",
            Page::Delivery => "delivery",
            Page::Logs => "logs",
            Page::Quarantine => "quarantine",
            Page::Transactional => "transactional",
            Page::Mta => "mta",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Deliveries => "Deliveries",
            Page::Delivery => "Delivery",
            Page::Logs => "Delivery log",
            Page::Quarantine => "Quarantine",
            Page::Transactional => "Transactional",
            Page::Mta => "MTA",
        }
    }

    /// The navigation entry it belongs to.
    fn section(self) -> Page {
        match self {
            Page::Delivery | Page::Logs => Page::Deliveries,
            other => other,
        }
    }
}

const NAV: [(Page, &str); 4] = [
    (Page::Deliveries, "/ui/deliveries"),
    (Page::Quarantine, "/ui/quarantine"),
    (Page::Transactional, "/ui/transactional"),
    (Page::Mta, "/ui/mta"),
];

/// `s` safe inside element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn head(out: &mut String, title: &str, csrf: Option<&str>) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · cartero</title><link rel=\"stylesheet\" href=\"/ui/assets/app.css\">",
        escape(title)
    );
    if let Some(t) = csrf {
        let _ = write!(out, "<meta name=\"csrf-token\" content=\"{}\">", escape(t));
    }
    out.push_str("</head>");
}

/// The login page; `error` is shown above the form.
pub fn login(csrf: &str, next: &str, error: Option<&str>) -> String {
    let mut out = String::with_capacity(2048);
    head(&mut out, "Log in", None);
    out.push_str("<body class=\"login\"><main id=\"main\"><h1>cartero</h1>");
    if let Some(e) = error {
        let _ = write!(out, "<p class=\"error\" role=\"alert\">{}</p>", escape(e));
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/ui/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label for=\"user\">Operator</label>\
         <input id=\"user\" name=\"user\" autocomplete=\"username\">\
         <label for=\"password\">Password or API token</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <p class=\"hint\">Leave the operator empty to log in with the API token \
         (<code>data_dir/api-token</code>).</p>\
         <button type=\"submit\">Log in</button></form></main></body></html>",
        escape(csrf),
        escape(next)
    );
    out
}

/// The shell of a page: navigation, logout, and the empty `<main>` `app.js` fills.
pub fn shell(page: Page, id: Option<i64>, operator: &str, csrf: &str) -> String {
    let mut out = String::with_capacity(4096);
    head(&mut out, page.title(), Some(csrf));
    out.push_str(
        "<body><a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\">\
         <a class=\"brand\" href=\"/ui/deliveries\">cartero</a><nav aria-label=\"Main\">",
    );
    for (p, href) in NAV {
        let current = if p == page.section() {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(out, "<a href=\"{href}\"{current}>{}</a>", p.title());
    }
    let _ = write!(
        out,
        "</nav><form class=\"logout\" method=\"post\" action=\"/ui/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><span class=\"who\">{}</span>\
         <button type=\"submit\">Log out</button></form></header>\
         <div id=\"flash\" role=\"alert\" aria-live=\"assertive\"></div>\
         <main id=\"main\" data-page=\"{}\" data-id=\"{}\"><h1>{}</h1>\
         <p class=\"loading\">Loading…</p></main>\
         <script src=\"/ui/assets/app.js\" defer></script></body></html>",
        escape(csrf),
        escape(operator),
        page.name(),
        id.map(|i| i.to_string()).unwrap_or_default(),
        page.title()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_content_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let page = login("t", "/ui/x\"><script>", Some("<b>no</b>"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;b&gt;no&lt;/b&gt;"));
        let page = shell(Page::Logs, Some(7), "<ana>", "tok");
        assert!(page.contains("&lt;ana&gt;") && !page.contains("<ana>"));
        assert!(page.contains("data-page=\"logs\" data-id=\"7\""));
        assert!(page.contains("<meta name=\"csrf-token\" content=\"tok\">"));
        assert!(
            page.contains("href=\"/ui/deliveries\" aria-current=\"page\""),
            "the log page belongs to Deliveries"
        );
    }
}
