//! 要対協 meeting packs for people: a `GetMeetingPackResponse` opened with the reader's age
//! identities and rendered as Japanese Markdown or as a print-ready HTML page (A4, the cover
//! first, then one case per page under the 個別ケース検討会議 headings: 状況・危険度, 経過と評価,
//! 援助方針, 役割分担, 主担当機関・キーパーソン, 支援計画; a 実務者会議 also gets the 進行管理台帳
//! of all its cases).
//!
//! What the reader's identities do not open shows as [`UNREADABLE`], never as an error. All text
//! is treated as untrusted and escaped for the output format. The output depends on the pack
//! alone (the only time in it is the pack's `generated_at`), so the same pack renders to the same
//! bytes.
//!
//! ```no_run
//! # fn example(response: tsunagu_proto::v1::GetMeetingPackResponse,
//! #            identities: Vec<age::x25519::Identity>) {
//! use tsunagu_client::pack::{self, Format, Opener};
//!
//! let view = pack::build(&response, &Opener::new(&identities));
//! let html = pack::render(&view, Format::Html);
//! # let _ = html;
//! # }
//! ```

mod html;
mod labels;
mod markdown;
mod model;
mod opener;
pub mod text;

use std::path::Path;
use std::str::FromStr;

pub use model::{
    ATTESTED, CaseView, DecisionView, HIDDEN_AGENCY, NOT_SET, NOTHING_RECORDED, PackView,
    ReferralRow, RegistrationView, SummaryView, TimelineEntry, build, split_plan,
};
pub use opener::{Content, Opener, UNREADABLE};

/// The headings of each case, in the order of the 個別ケース検討会議 agenda.
pub const HEADINGS: [&str; 6] = [
    "状況・危険度",
    "経過と評価",
    "援助方針",
    "役割分担",
    "主担当機関・キーパーソン",
    "支援計画",
];

/// The heading of the table of every case on a 実務者会議's agenda.
pub const LEDGER_HEADING: &str = "進行管理台帳";

/// The heading of the summary block.
pub const SUMMARY_HEADING: &str = "概要";

/// The handling notice on the cover of every pack.
pub const CONFIDENTIAL: &str = "取扱注意: 要保護児童対策地域協議会の構成機関の間で、守秘義務\
     （児童福祉法第25条の5）のもとに共有する資料です。複写・持出しは各機関の規程に従い、会議後は\
     確実に管理・廃棄してください。";

/// The two outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Japanese Markdown (CommonMark with tables).
    Markdown,
    /// One self-contained HTML page, print-ready on A4.
    Html,
}

/// A format name that is neither Markdown nor HTML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a pack format: use md (Markdown) or html")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(Format::Markdown),
            "html" | "htm" => Ok(Format::Html),
            _ => Err(UnknownFormat(text.to_owned())),
        }
    }
}

impl Format {
    /// The format a file name's extension names (`.md`, `.markdown`, `.html`, `.htm`).
    pub fn from_path(path: &Path) -> Option<Format> {
        path.extension()
            .and_then(|ext| ext.to_str())
            .and_then(|ext| ext.parse().ok())
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }
}

/// Renders a built pack in `format`.
pub fn render(view: &PackView, format: Format) -> String {
    match format {
        Format::Markdown => markdown::render(view),
        Format::Html => html::render(view),
    }
}

/// Opens and renders a pack in one go.
pub fn render_pack(
    response: &tsunagu_proto::v1::GetMeetingPackResponse,
    opener: &Opener<'_>,
    format: Format,
) -> String {
    render(&build(response, opener), format)
}

#[cfg(test)]
mod tests;
