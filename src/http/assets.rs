//! `GET /assets/…`: the dashboard's stylesheet and ES modules, embedded in the binary at build
//! time (no files to deploy, no build step). Public: they hold no lead data.

use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `asset!("style.css", CSS)`: web/style.css, embedded, under its own name.
macro_rules! asset {
    ($name:literal, $kind:expr) => {
        ($name, include_str!(concat!("../../web/", $name)), $kind)
    };
}

/// Everything under `/assets/`: (name, content, content type). The dashboard's script is a set
/// of ES modules; index.html loads `main.js`, which imports the others by these names.
const ASSETS: &[(&str, &str, &str)] = &[
    asset!("style.css", CSS),
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("catalog.js", JS),
    asset!("chart.js", JS),
    asset!("conn-status.js", JS),
    asset!("dom.js", JS),
    asset!("events.js", JS),
    asset!("filters.js", JS),
    asset!("format.js", JS),
    asset!("health.js", JS),
    asset!("lead-detail.js", JS),
    asset!("lead-list.js", JS),
    asset!("leads.js", JS),
    asset!("links.js", JS),
    asset!("live-source.js", JS),
    asset!("notify.js", JS),
    asset!("settings.js", JS),
    asset!("stats.js", JS),
    asset!("team.js", JS),
    asset!("toasts.js", JS),
    asset!("view-state.js", JS),
];

/// GET /assets/{name} (one of `ASSETS`)
pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path!("assets" / String)
        .and(warp::get())
        .and_then(asset)
        .boxed()
}

async fn asset(name: String) -> Result<Response, warp::Rejection> {
    let Some(&(_, body, kind)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return Err(warp::reject::not_found());
    };
    let mut res = Response::new(body.into());
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Revalidate every time: a new binary must never run with yesterday's script.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::dashboard::INDEX_HTML;

    /// A module that is missing from [`ASSETS`] would only fail in the browser, as a 404 that
    /// stops the whole dashboard: every script in web/ is served, and every import names one.
    #[test]
    fn every_module_the_dashboard_loads_is_served() {
        let served = |name: &str| ASSETS.iter().any(|(n, _, _)| *n == name);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".js") || name.ends_with(".css") {
                assert!(served(&name), "web/{name} is not in ASSETS");
            }
        }
        assert!(INDEX_HTML.contains(r#"<script type="module" src="/assets/main.js">"#));
        for (name, body, kind) in ASSETS {
            if *kind != JS {
                continue;
            }
            for rest in body.split(" from './").skip(1) {
                let import = &rest[..rest.find('\'').unwrap()];
                assert!(
                    served(import),
                    "{name} imports ./{import}, which is not served"
                );
            }
        }
    }
}
