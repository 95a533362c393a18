//! 成果: the picture of whether families connected, from the hub's outcomes answer (routing
//! metadata only): headline rates, the funnel of the three layers, how long families waited to
//! connect, and why they did not, each drawn as SVG on this machine beside a table of the same
//! figures. Every number links to the referrals behind it in the sent or received list.

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use serde::Deserialize;
use tsunagu_proto::v1::{
    Count, GetOutcomesRequest, GetOutcomesResponse, Milestone, OutcomeFigures,
};

use super::{Context, Frame, PageError, Section, page};
use crate::console::charts::{Bar, columns, horizontal_bars, percent};
use crate::console::guard::SignedIn;
use crate::console::state::AppState;
use crate::outcomes::{MARKER, REASONS, count_value, milestone, milestone_text};

/// The period shown, from the query string (Japan dates; default: this year so far).
#[derive(Debug, Default, Deserialize)]
pub struct Period {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// One headline figure.
pub struct Headline {
    pub label: &'static str,
    pub value: String,
    pub detail: String,
    pub href: String,
}

/// A chart with its table: (label, value shown, link).
pub struct Panel {
    pub title: &'static str,
    pub svg: String,
    pub rows: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "console/outcomes.html")]
pub struct OutcomesPage {
    pub frame: Frame,
    pub from: String,
    pub to: String,
    pub scope: String,
    pub list: &'static str,
    pub headlines: Vec<Headline>,
    pub panels: Vec<Panel>,
}

/// A valid `YYYY-MM-DD`, else `None`.
fn date(text: &str) -> Option<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .ok()
        .map(|_| text.to_owned())
}

/// `GET /outcomes`.
pub async fn show(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let cx = Context::load(&state, &signed_in, "成果", Section::Outcomes).await?;
    let today = cx.now.to_offset(crate::render::JAPAN).date();
    let today = format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    let from = date(&period.from).unwrap_or_else(|| format!("{}-01-01", &today[..4]));
    let to = date(&period.to).unwrap_or(today);
    let hub = state.hub();
    let answer = hub
        .outcomes()
        .get_outcomes(GetOutcomesRequest {
            from: from.clone(),
            to: to.clone(),
            group_by: Vec::new(),
            suppress_below: 0,
            municipality: String::new(),
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner();
    // A coordinator's figures are mostly referrals it sent; an agency's, those it received.
    let list = if cx.frame.coordinator {
        "/sent"
    } else {
        "/inbox"
    };
    let view = build(&answer, list, &from, &to);
    Ok(page(&OutcomesPage {
        frame: cx.frame,
        scope: if answer.municipalities.is_empty() {
            "自機関が送信・受信した紹介".to_owned()
        } else {
            format!(
                "市区町村 {} のすべての紹介",
                answer.municipalities.join("、")
            )
        },
        from,
        to,
        list,
        headlines: view.0,
        panels: view.1,
    }))
}

fn value(count: Option<&Count>) -> u64 {
    count_value(count).unwrap_or(0)
}

fn shown(count: Option<&Count>) -> String {
    count_value(count).map_or_else(|| MARKER.to_owned(), |n| n.to_string())
}

/// The headlines and the panels of an answer; links go to `list` with the matching filters.
pub fn build(
    answer: &GetOutcomesResponse,
    list: &str,
    from: &str,
    to: &str,
) -> (Vec<Headline>, Vec<Panel>) {
    let f: OutcomeFigures = answer.totals.clone().unwrap_or_default();
    let link = |filter: &str| {
        let mut href = format!("{list}?stage=all&from={from}&to={to}");
        if !filter.is_empty() {
            href.push('&');
            href.push_str(filter);
        }
        href
    };
    let r = f.response.unwrap_or_default();
    let c = f.connection.clone().unwrap_or_default();
    let j = f.journeys.unwrap_or_default();
    let d = f.delivery.unwrap_or_default();
    let total = value(f.referrals.as_ref());
    let rate = |part: Option<&Count>, whole: u64| {
        if whole == 0 {
            "-".to_owned()
        } else {
            format!("{}%", percent(value(part), whole))
        }
    };
    let (median, p90) = milestone_text(&f, Milestone::Connected);
    let headlines = vec![
        Headline {
            label: "紹介",
            value: shown(f.referrals.as_ref()),
            detail: "件（送信日で集計）".to_owned(),
            href: link(""),
        },
        Headline {
            label: "受入率",
            value: rate(r.accepted.as_ref(), total),
            detail: format!(
                "受入 {} 件・辞退 {} 件",
                shown(r.accepted.as_ref()),
                shown(r.declined.as_ref())
            ),
            href: link("response=declined"),
        },
        Headline {
            label: "つながった率",
            value: rate(c.connected.as_ref(), total),
            detail: format!("つながった {} 件", shown(c.connected.as_ref())),
            href: link("connection=connected"),
        },
        Headline {
            label: "家族単位でつながった率",
            value: rate(j.connected.as_ref(), value(j.journeys.as_ref())),
            detail: format!(
                "{} 家族中 {}（他機関への紹介をたどって最後でつながった）",
                shown(j.journeys.as_ref()),
                shown(j.connected.as_ref())
            ),
            href: link("connection=connected"),
        },
        Headline {
            label: "つながるまで",
            value: median,
            detail: format!("中央値（90%: {p90}）"),
            href: link("connection=connected"),
        },
        Headline {
            label: "確認待ち",
            value: shown(c.awaiting_confirmation.as_ref()),
            detail: "件（結果の報告あり・未確認）".to_owned(),
            href: link("stage=reported"),
        },
    ];

    // The funnel: how far referrals got, layer by layer.
    let reached = |m: Milestone| milestone(&f, m).and_then(|d| d.reached);
    let funnel = [
        ("紹介", f.referrals, link("")),
        (
            "受信確認",
            Some(Count {
                value: value(d.delivered.as_ref()),
                suppressed: d.delivered.is_some_and(|c| c.suppressed),
            }),
            link("stage=all"),
        ),
        ("受入", reached(Milestone::Accepted), link("")),
        ("初回連絡", reached(Milestone::FirstContact), link("")),
        ("つながった", c.connected, link("connection=connected")),
        ("確認済", c.confirmed, link("stage=closed")),
    ];
    let funnel_bars: Vec<Bar> = funnel
        .iter()
        .map(|(label, count, href)| bar(label, count.as_ref(), href))
        .collect();

    // Time to connect.
    let buckets = [
        "1日未満",
        "1〜3日",
        "3〜7日",
        "7〜14日",
        "14〜30日",
        "30日以上",
    ];
    let histogram = milestone(&f, Milestone::Connected)
        .map(|d| d.histogram.clone())
        .unwrap_or_default();
    let wait_bars: Vec<Bar> = buckets
        .iter()
        .enumerate()
        .map(|(i, label)| bar(label, histogram.get(i), &link("connection=connected")))
        .collect();

    // Why families did not connect.
    let reason_bars: Vec<Bar> = REASONS
        .iter()
        .map(|(reason, label)| {
            let count = crate::outcomes::reason_count(&f, *reason).copied();
            bar(
                label,
                count.as_ref(),
                &link(&format!(
                    "connection=not_connected&reason={}",
                    crate::render::Coded::code(*reason)
                )),
            )
        })
        .collect();

    // Declines and failures by the reason code given.
    let mut answer_bars: Vec<Bar> = Vec::new();
    for (state, word, list) in [
        ("declined", "辞退", &f.declines),
        ("failed", "不成立", &f.failures),
    ] {
        for code in list {
            answer_bars.push(bar(
                &format!("{word}: {}", code.code),
                code.count.as_ref(),
                &link(&format!("response={state}")),
            ));
        }
    }

    let panel = |title: &'static str, svg: String, bars: &[Bar]| Panel {
        title,
        svg,
        rows: bars
            .iter()
            .map(|b| {
                (
                    b.label.clone(),
                    b.shown.clone().unwrap_or_else(|| b.value.to_string()),
                    b.href.clone().unwrap_or_default(),
                )
            })
            .collect(),
    };
    let panels = vec![
        panel(
            "三層の流れ（どこまで進んだか）",
            horizontal_bars("三層の流れ", &funnel_bars, Some(total)),
            &funnel_bars,
        ),
        panel(
            "つながるまでの日数",
            columns("つながるまでの日数", &wait_bars),
            &wait_bars,
        ),
        panel(
            "つながらなかった理由",
            horizontal_bars("つながらなかった理由", &reason_bars, None),
            &reason_bars,
        ),
        panel(
            "辞退・不成立の理由",
            horizontal_bars("辞退・不成立の理由", &answer_bars, None),
            &answer_bars,
        ),
    ];
    (headlines, panels)
}

/// A bar for a count (suppressed counts show the marker and draw nothing).
fn bar(label: &str, count: Option<&Count>, href: &str) -> Bar {
    let mut bar = Bar::new(label, value(count)).linked(href);
    if count.is_some_and(|c| c.suppressed) {
        bar.shown = Some(MARKER.to_owned());
    }
    bar
}
