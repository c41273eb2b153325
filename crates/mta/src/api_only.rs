//! The HTTP listener without an MTA behind it. A node that runs only the campaign layer
//! (remote MTA mode, docs/transactional.md) serves its routes from the same `[http]` settings
//! as a full node: the bearer-token check on every route but `/healthz`, the body limit, the
//! header timeout and the cap on open connections.

use crate::api::SharedRequestAuth;
use crate::http_server::{HttpLimits, serve};
use crate::start::{api_tokens, bind};
use crate::{MtaConfig, StartError};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running listener; [`ApiListener::stop`] lets open connections finish their request.
pub struct ApiListener {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ApiListener {
    /// Binds `http.listen` and serves `routes` behind the API tokens (configured, or the one
    /// kept in `data_dir/api-token`, generated at first start) or `auth`, and `public`
    /// without a check.
    pub async fn start(
        cfg: &MtaConfig,
        routes: Router,
        public: Option<Router>,
        auth: Option<SharedRequestAuth>,
    ) -> Result<ApiListener, StartError> {
        let tokens = Arc::new(api_tokens(cfg)?);
        let listener = bind(cfg.http.listen).await?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: cfg.http.listen,
            source,
        })?;
        let protected = routes
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let (tokens, auth) = (tokens.clone(), auth.clone());
                async move {
                    match crate::api::allowed(&tokens, auth.as_deref(), req) {
                        Ok(req) => next.run(req).await,
                        Err(()) => crate::api::unauthorized(),
                    }
                }
            }))
            .layer(DefaultBodyLimit::max(cfg.http.max_body));
        let mut app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .merge(protected);
        if let Some(p) = public {
            app = app.merge(p);
        }
        let tls = match cfg.http.tls {
            true => Some(crate::tls::acceptor(cfg)?),
            false => None,
        };
        let limits = HttpLimits {
            header_timeout: cfg.http.header_timeout,
            max_connections: cfg.http.max_connections,
            tls,
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, app, limits, stopped));
        Ok(ApiListener { addr, stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
