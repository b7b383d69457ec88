//! `ferry offsets translate --group G`: a group's committed source offsets,
//! their exact translations and the target group's offsets, side by side.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use anyhow::{Context, Result};
use ferry_client::{Client, OffsetSpec, TopicPartition};
use ferry_engine::offset_map::OffsetMap;

/// Where a source partition's committed offset continues on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Translation {
    /// The target offset of the first mirrored record at or after it.
    At(i64),
    /// That record was deleted on the target (retention, delete-records):
    /// the target partition's log now starts at `log_start`.
    Deleted { offset: i64, log_start: i64 },
    /// The flow does not mirror the topic (why).
    NotMirrored(String),
    /// The flow has mirrored nothing of the partition yet.
    NothingYet,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub source: TopicPartition,
    pub committed: i64,
    /// The target topic, when the flow mirrors the source topic.
    pub target_topic: Option<String>,
    pub translation: Translation,
    /// The target group's committed offset for the target partition.
    pub target_committed: Option<i64>,
}

/// Translates with the map, then checks the result against the target
/// partition's log start: an offset whose record is gone is reported as
/// such, never as a position a consumer could not read.
pub fn translate(map: Option<&OffsetMap>, offset: i64, log_start: Option<i64>) -> Translation {
    match map.and_then(|m| m.translate(offset)) {
        None => Translation::NothingYet,
        Some(t) => match log_start {
            Some(start) if t < start => Translation::Deleted {
                offset: t,
                log_start: start,
            },
            _ => Translation::At(t),
        },
    }
}

/// The state of the target group against the translation.
fn status(row: &Row) -> String {
    match (&row.translation, row.target_committed) {
        (Translation::At(t), Some(c)) if c == *t => "in sync".into(),
        (Translation::At(t), Some(c)) if c > *t => "target group ahead".into(),
        (Translation::At(_), _) => "not synced yet".into(),
        (
            Translation::Deleted {
                offset, log_start, ..
            },
            _,
        ) => format!("target offset {offset} deleted (log starts at {log_start})"),
        (Translation::NotMirrored(why), _) => format!("not mirrored: {why}"),
        (Translation::NothingYet, _) => "nothing mirrored yet".into(),
    }
}

const HEADER: [&str; 7] = [
    "TOPIC",
    "PARTITION",
    "SOURCE-OFFSET",
    "TARGET-TOPIC",
    "TARGET-OFFSET",
    "TARGET-GROUP",
    "STATUS",
];

/// The table, one row per source partition sorted by topic and partition,
/// columns left-aligned under their headers ("-" for nothing).
pub fn render(rows: &[Row]) -> String {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (a.source.topic.as_ref(), a.source.partition)
            .cmp(&(b.source.topic.as_ref(), b.source.partition))
    });
    let dash = || "-".to_owned();
    let mut cells: Vec<[String; 7]> = vec![HEADER.map(str::to_owned)];
    for r in sorted {
        cells.push([
            r.source.topic.to_string(),
            r.source.partition.to_string(),
            r.committed.to_string(),
            r.target_topic.clone().unwrap_or_else(dash),
            match r.translation {
                Translation::At(t) => t.to_string(),
                _ => dash(),
            },
            r.target_committed.map_or_else(dash, |c| c.to_string()),
            status(r),
        ]);
    }
    let mut widths = [0; 7];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Log start offsets of the target partitions, by partition; a topic the
/// target does not have (yet) has none.
pub async fn log_starts(
    target: &Client,
    partitions: &[TopicPartition],
) -> HashMap<TopicPartition, i64> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic
            .entry(tp.topic.as_ref())
            .or_default()
            .push(tp.partition);
    }
    let mut out = HashMap::new();
    for (topic, ids) in by_topic {
        // A missing topic or partition: translated as if nothing were deleted.
        if let Ok(starts) = target.list_offsets(topic, &ids, OffsetSpec::Earliest).await {
            for (p, start) in starts {
                out.insert(TopicPartition::new(topic, p), start);
            }
        }
    }
    out
}

/// The target group's committed offsets (an unknown group has none).
pub async fn committed(
    client: &Client,
    cluster: &str,
    group: &str,
) -> Result<HashMap<TopicPartition, i64>> {
    Ok(client
        .fetch_group_offsets(group)
        .await
        .with_context(|| format!("cluster {cluster}: committed offsets of group {group:?}"))?
        .into_iter()
        .map(|(tp, offset, _)| (tp, offset))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn row(topic: &str, p: i32, committed: i64, t: Translation, c: Option<i64>) -> Row {
        Row {
            source: TopicPartition::new(topic, p),
            committed,
            target_topic: (!matches!(t, Translation::NotMirrored(_)))
                .then(|| format!("src.{topic}")),
            translation: t,
            target_committed: c,
        }
    }

    #[test]
    fn the_table_is_sorted_aligned_and_says_what_each_row_means() {
        let rows = vec![
            row("orders", 1, 130, Translation::At(120), Some(120)),
            row("orders", 0, 77, Translation::At(70), None),
            row(
                "audit",
                0,
                5,
                Translation::NotMirrored("matches no include pattern".into()),
                None,
            ),
            row(
                "orders",
                2,
                9,
                Translation::Deleted {
                    offset: 9,
                    log_start: 40,
                },
                Some(40),
            ),
            row("orders", 10, 3, Translation::NothingYet, None),
            row("orders", 3, 50, Translation::At(48), Some(60)),
        ];
        let want = "\
TOPIC   PARTITION  SOURCE-OFFSET  TARGET-TOPIC  TARGET-OFFSET  TARGET-GROUP  STATUS
audit   0          5              -             -              -             not mirrored: matches no include pattern
orders  0          77             src.orders    70             -             not synced yet
orders  1          130            src.orders    120            120           in sync
orders  2          9              src.orders    -              40            target offset 9 deleted (log starts at 40)
orders  3          50             src.orders    48             60            target group ahead
orders  10         3              src.orders    -              -             nothing mirrored yet
";
        assert_eq!(render(&rows), want);
    }

    #[test]
    fn an_empty_table_is_just_the_header() {
        assert_eq!(
            render(&[]),
            "TOPIC  PARTITION  SOURCE-OFFSET  TARGET-TOPIC  TARGET-OFFSET  TARGET-GROUP  STATUS\n"
        );
    }

    #[test]
    fn translations_below_the_target_log_start_are_deleted_not_wrong() {
        let mut map = OffsetMap::new();
        map.record(0, 0, 10).unwrap();
        map.record(15, 10, 10).unwrap(); // 10..15 aborted
        assert_eq!(translate(Some(&map), 12, Some(0)), Translation::At(10));
        assert_eq!(translate(Some(&map), 12, Some(10)), Translation::At(10));
        assert_eq!(
            translate(Some(&map), 3, Some(10)),
            Translation::Deleted {
                offset: 3,
                log_start: 10
            }
        );
        assert_eq!(translate(Some(&map), 3, None), Translation::At(3));
        assert_eq!(translate(None, 3, Some(0)), Translation::NothingYet);
        assert_eq!(
            translate(Some(&OffsetMap::new()), 3, None),
            Translation::NothingYet
        );
    }
}
