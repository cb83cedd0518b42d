//! A small typed WebDriver client: chromedriver as a child process on an ephemeral port, and
//! browser sessions (headless Chromium) it drives: navigate, run scripts, screenshot, close.

mod http;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use base64::Engine as _;
use hyper::Method;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use http::Endpoint;

/// How long chromedriver may take to say which port it listens on.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Most lines of chromedriver's start-up output read while looking for its port.
const MAX_DRIVER_START_LINES: usize = 50;

/// Where Debian's packages put the browser and its driver (`CHROMIUM`, `CHROMEDRIVER` override).
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// What to install when the browser or the driver is missing.
const INSTALL_HINT: &str = "install Debian's headless browser and its driver: \
     apt-get install -y chromium chromium-driver (or set CHROMIUM / CHROMEDRIVER)";

/// chromedriver running as a child process (killed when this drops).
pub struct ChromeDriver {
    _child: Child,
    endpoint: Endpoint,
    chromium: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver on an ephemeral loopback port, with its log in `log`.
    pub async fn start(log: &Path) -> anyhow::Result<ChromeDriver> {
        let chromium = program("CHROMIUM", DEFAULT_CHROMIUM)?;
        let driver = program("CHROMEDRIVER", DEFAULT_CHROMEDRIVER)?;
        let mut child = Command::new(&driver)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", driver.display()))?;
        let stdout = child.stdout.take().context("chromedriver's stdout")?;
        let port = tokio::time::timeout(DRIVER_START_TIMEOUT, read_port(stdout))
            .await
            .with_context(|| {
                format!("chromedriver did not start within {DRIVER_START_TIMEOUT:?}")
            })??;
        Ok(ChromeDriver {
            _child: child,
            endpoint: Endpoint {
                address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            },
            chromium,
        })
    }

    /// Opens a headless browser whose profile (cookies, OPFS, IndexedDB) lives in
    /// `user_data_dir`, so a later session on the same dir finds what this one stored.
    pub async fn open(&self, user_data_dir: &Path) -> anyhow::Result<Browser> {
        std::fs::create_dir_all(user_data_dir)?;
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": self.chromium,
                    "args": [
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        "--window-size=1000,800",
                        format!("--user-data-dir={}", user_data_dir.display()),
                    ],
                },
                "timeouts": {"script": http::COMMAND_TIMEOUT.as_millis() as u64 - 5_000},
            }}
        });
        let value = self
            .endpoint
            .call(Method::POST, "/session", Some(&capabilities))
            .await
            .context("opening a browser session")?;
        let id = value
            .get("sessionId")
            .and_then(Value::as_str)
            .context("chromedriver named no session id")?;
        Ok(Browser {
            endpoint: self.endpoint,
            path: format!("/session/{id}"),
        })
    }
}

/// `env` if set, else `default`; an error saying what to install if it is not there.
fn program(env: &str, default: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(std::env::var_os(env).unwrap_or_else(|| default.into()));
    if !path.is_file() {
        bail!("{} not found: {INSTALL_HINT}", path.display());
    }
    Ok(path)
}

/// Reads chromedriver's start-up lines until "... started successfully on port N."
async fn read_port(stdout: tokio::process::ChildStdout) -> anyhow::Result<u16> {
    let mut lines = BufReader::new(stdout).lines();
    for _ in 0..MAX_DRIVER_START_LINES {
        let Some(line) = lines.next_line().await? else {
            break;
        };
        if let Some(port) = port_in(&line) {
            return port;
        }
    }
    bail!("chromedriver exited or never said which port it listens on")
}

/// The port in chromedriver's "ChromeDriver was started successfully on port N." line.
fn port_in(line: &str) -> Option<anyhow::Result<u16>> {
    let rest = line.split("started successfully on port ").nth(1)?;
    let port = rest.trim().trim_end_matches('.');
    Some(
        port.parse()
            .with_context(|| format!("chromedriver printed {line:?}")),
    )
}

/// One browser window driven through WebDriver. Call [`Browser::close`] to end it (the
/// browser process exits when its session is deleted; chromedriver's exit ends it too).
pub struct Browser {
    endpoint: Endpoint,
    /// `/session/<id>`.
    path: String,
}

impl Browser {
    /// Loads `url` (waits for the document's load event).
    pub async fn navigate(&self, url: &str) -> anyhow::Result<()> {
        self.call(Method::POST, "/url", Some(json!({ "url": url })))
            .await?;
        Ok(())
    }

    /// Reloads the current page.
    pub async fn reload(&self) -> anyhow::Result<()> {
        self.call(Method::POST, "/refresh", Some(json!({}))).await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.call(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Runs `script` as an async function body (it may `await`; `arguments[i]` are `args`)
    /// and returns what it resolves to; a rejection is an error.
    pub async fn execute_async(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        // WebDriver's async scripts end by calling their last argument: wrap the body so a
        // returned promise settles it, and a rejection comes back as {error}.
        let wrapped = format!(
            "const done = arguments[arguments.length - 1];\
             const args = Array.prototype.slice.call(arguments, 0, -1);\
             (async function () {{ {script} }}).apply(null, args)\
               .then((value) => done({{ ok: value === undefined ? null : value }}),\
                     (error) => done({{ error: String(error && error.stack || error) }}));"
        );
        let value = self
            .call(
                Method::POST,
                "/execute/async",
                Some(json!({ "script": wrapped, "args": args })),
            )
            .await?;
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            bail!("the page's script failed: {error}");
        }
        Ok(value.get("ok").cloned().unwrap_or(Value::Null))
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let value = self.call(Method::GET, "/screenshot", None).await?;
        let text = value.as_str().context("a screenshot that is no text")?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .context("a screenshot that is no base64")
    }

    /// Ends the session: the browser exits (its profile stays on disk).
    pub async fn close(self) -> anyhow::Result<()> {
        self.call(Method::DELETE, "", None).await?;
        Ok(())
    }

    async fn call(&self, method: Method, tail: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let path = format!("{}{tail}", self.path);
        self.endpoint.call(method, &path, body.as_ref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_port_is_read_from_its_start_line() {
        let line = "ChromeDriver was started successfully on port 42105.";
        assert_eq!(port_in(line).unwrap().unwrap(), 42105);
        assert!(port_in("Only local connections are allowed.").is_none());
        assert!(
            port_in("started successfully on port many.")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn a_missing_browser_says_what_to_install() {
        let error = program("TIDINGS_TEST_NO_SUCH_VAR", "/nonexistent/chromium").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("apt-get install -y chromium chromium-driver")
        );
    }
}
