//! Charts drawn on the server as SVG: horizontal bars (a funnel, a breakdown by reason) and
//! columns (a distribution). No script, no library, nothing from the network; every text is
//! escaped, and each chart is shown beside a table of the same figures for screen readers and
//! printing.

use std::fmt::Write as _;

/// One bar: its label, its value, and the page that lists what it counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: u64,
    /// Shown instead of the value when the figure is withheld (a suppressed cell).
    pub shown: Option<String>,
    pub href: Option<String>,
}

impl Bar {
    pub fn new(label: impl Into<String>, value: u64) -> Self {
        Bar {
            label: label.into(),
            value,
            shown: None,
            href: None,
        }
    }

    pub fn linked(mut self, href: impl Into<String>) -> Self {
        self.href = Some(href.into());
        self
    }

    fn text(&self) -> String {
        self.shown.clone().unwrap_or_else(|| self.value.to_string())
    }
}

const WIDTH: u32 = 640;
const LABEL_WIDTH: u32 = 190;
const VALUE_WIDTH: u32 = 90;
const ROW_HEIGHT: u32 = 28;
const BAR_HEIGHT: u32 = 18;

/// Horizontal bars, one per row, scaled to the largest value; `of` adds "（n%）" of that total
/// after each value, as a funnel reads.
pub fn horizontal_bars(title: &str, bars: &[Bar], of: Option<u64>) -> String {
    let height = ROW_HEIGHT * u32::try_from(bars.len()).unwrap_or(u32::MAX).max(1) + 8;
    let max = bars.iter().map(|bar| bar.value).max().unwrap_or(0).max(1);
    let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
    let mut svg = open_svg(title, WIDTH, height);
    for (row, bar) in bars.iter().enumerate() {
        let y = 4 + ROW_HEIGHT * u32::try_from(row).unwrap_or(0);
        let length = scaled(bar.value, max, span);
        let mut value = bar.text();
        if let (Some(total), None) = (of, &bar.shown)
            && total > 0
        {
            let _ = write!(value, "（{}%）", percent(bar.value, total));
        }
        open_link(&mut svg, bar.href.as_deref());
        let _ = write!(
            svg,
            r#"<text x="{lx}" y="{ty}" text-anchor="end" class="label">{label}</text><rect x="{bx}" y="{y}" width="{length}" height="{BAR_HEIGHT}" class="bar"/><text x="{vx}" y="{ty}" class="value">{value}</text>"#,
            lx = LABEL_WIDTH - 8,
            ty = y + 14,
            label = escape(&bar.label),
            bx = LABEL_WIDTH,
            vx = LABEL_WIDTH + length + 6,
            value = escape(&value),
        );
        close_link(&mut svg, bar.href.as_deref());
    }
    svg.push_str("</svg>");
    svg
}

const COLUMN_HEIGHT: u32 = 150;

/// Vertical columns over ordered buckets (a distribution of durations), labels below.
pub fn columns(title: &str, bars: &[Bar]) -> String {
    let count = u32::try_from(bars.len()).unwrap_or(u32::MAX).max(1);
    let slot = (WIDTH - 20) / count;
    let width = slot.saturating_sub(12).max(4);
    let height = COLUMN_HEIGHT + 56;
    let max = bars.iter().map(|bar| bar.value).max().unwrap_or(0).max(1);
    let mut svg = open_svg(title, WIDTH, height);
    let baseline = COLUMN_HEIGHT + 20;
    let _ = write!(
        svg,
        r#"<line x1="10" y1="{baseline}" x2="{x2}" y2="{baseline}" class="axis"/>"#,
        x2 = WIDTH - 10
    );
    for (index, bar) in bars.iter().enumerate() {
        let x = 10 + slot * u32::try_from(index).unwrap_or(0) + (slot - width) / 2;
        let tall = scaled(bar.value, max, COLUMN_HEIGHT);
        let centre = x + width / 2;
        open_link(&mut svg, bar.href.as_deref());
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{top}" width="{width}" height="{tall}" class="bar"/><text x="{centre}" y="{vy}" text-anchor="middle" class="value">{value}</text><text x="{centre}" y="{ly}" text-anchor="middle" class="label">{label}</text>"#,
            top = baseline - tall,
            vy = baseline - tall - 4,
            value = escape(&bar.text()),
            ly = baseline + 18,
            label = escape(&bar.label),
        );
        close_link(&mut svg, bar.href.as_deref());
    }
    svg.push_str("</svg>");
    svg
}

/// `part` of `total` as a whole percentage, rounded half up.
pub fn percent(part: u64, total: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    (part.saturating_mul(100) + total / 2) / total
}

fn scaled(value: u64, max: u64, span: u32) -> u32 {
    let length = u64::from(span).saturating_mul(value) / max;
    // A bar for a value above zero stays visible.
    let length = u32::try_from(length).unwrap_or(span);
    if value > 0 { length.max(2) } else { 0 }
}

fn open_svg(title: &str, width: u32, height: u32) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{title}"><title>{title}</title>"#,
        title = escape(title)
    )
}

fn open_link(svg: &mut String, href: Option<&str>) {
    if let Some(href) = href {
        let _ = write!(svg, r#"<a href="{}">"#, escape(href));
    }
}

fn close_link(svg: &mut String, href: Option<&str>) {
    if href.is_some() {
        svg.push_str("</a>");
    }
}

/// Escapes text for SVG character data and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_links_are_escaped() {
        let svg = horizontal_bars(
            "<script>",
            &[Bar::new("a<b & \"c\"", 3).linked("/x?a=1&b=\"2\"")],
            None,
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"), "{svg}");
        assert!(
            svg.contains(r#"<a href="/x?a=1&amp;b=&quot;2&quot;">"#),
            "{svg}"
        );
    }

    #[test]
    fn the_largest_bar_fills_the_span_and_zero_draws_nothing() {
        let svg = horizontal_bars("t", &[Bar::new("全部", 10), Bar::new("なし", 0)], Some(10));
        let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        assert!(svg.contains(&format!(r#"width="{span}""#)), "{svg}");
        assert!(svg.contains(r#"width="0""#), "{svg}");
        assert!(svg.contains("10（100%）"), "{svg}");
        assert!(svg.contains("0（0%）"), "{svg}");
    }

    #[test]
    fn a_withheld_figure_shows_its_marker_not_a_percentage() {
        let mut bar = Bar::new("少数", 3);
        bar.shown = Some("5未満".to_owned());
        let svg = horizontal_bars("t", &[bar], Some(100));
        assert!(svg.contains("5未満"), "{svg}");
        assert!(!svg.contains(">3<") && !svg.contains("3%"), "{svg}");
    }

    #[test]
    fn columns_keep_their_order_and_values() {
        let svg = columns("分布", &[Bar::new("1日未満", 4), Bar::new("1〜3日", 9)]);
        let first = svg.find("1日未満").unwrap();
        let second = svg.find("1〜3日").unwrap();
        assert!(first < second);
        assert!(svg.contains(">9<") && svg.contains(">4<"), "{svg}");
    }

    #[test]
    fn percentages_round_half_up_and_survive_an_empty_total() {
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(2, 3), 67);
        assert_eq!(percent(1, 8), 13);
        assert_eq!(percent(5, 0), 0);
    }
}
