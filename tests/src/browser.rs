//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`),
//! for tests that click through the console as a person would, and save screenshots to look at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::fixtures::on_path;

/// A chromedriver process and one browser session of it; both end when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: `$TSUNAGU_SCREENSHOTS`, else `target/console-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("TSUNAGU_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
        })
}

impl Browser {
    /// A headless Chromium at 1280×800, or `None` to skip (with a message) when Chromium or
    /// its driver is missing — except in CI (`CI=true` or `TSUNAGU_REQUIRE_CHROMIUM=1`), where
    /// that fails the test.
    pub async fn start_or_skip(test: &str) -> Option<Browser> {
        let chromium = ["chromium", "chromium-browser"]
            .into_iter()
            .find_map(on_path);
        let driver = on_path("chromedriver");
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
                || std::env::var("TSUNAGU_REQUIRE_CHROMIUM").as_deref() == Ok("1");
            assert!(
                !required,
                "{test} needs chromium and chromedriver: apt-get install -y chromium chromium-driver"
            );
            eprintln!("{test}: skipped, chromium or chromedriver is not installed");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("chromedriver exited with {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1280,800", "--lang=ja",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with headless Chromium");
        // The window's outer size includes the browser's own frame: size it so that the page
        // itself (the viewport a person sees) is 1280×800.
        client.set_window_size(1280, 800).await.unwrap();
        let frame = client
            .execute("return window.outerHeight - window.innerHeight;", vec![])
            .await
            .ok()
            .and_then(|value| value.as_u64())
            .unwrap_or(0);
        if frame > 0 {
            client
                .set_window_size(1280, 800 + u32::try_from(frame).unwrap_or(0))
                .await
                .unwrap();
        }
        Some(Browser {
            client,
            driver: child,
            _profile: profile,
        })
    }

    /// Saves a screenshot of the window as `<name>.png` in [`screenshot_dir`].
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Saves the page as the print preview would lay it out (A4 PDF) as `<name>.pdf`.
    pub async fn print_preview(&self, name: &str) -> PathBuf {
        let pdf = self
            .client
            .print(fantoccini::wd::PrintConfiguration::default())
            .await
            .unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.pdf"));
        std::fs::write(&path, pdf).unwrap();
        path
    }

    /// The visible text of the element `css` selects, waiting for it to appear.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits until the page's source satisfies `ready`, up to `within`.
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let source = self.client.source().await.unwrap();
            if ready(&source) {
                return source;
            }
            if Instant::now() >= deadline {
                let dir = screenshot_dir();
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("timed-out.html"), &source).unwrap();
                panic!("timed out waiting for {what} (the page is in timed-out.html)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
