//! Topic identity at partition start: a position (checkpoint, offset map,
//! or this process's own) belongs to the topics it was taken on. A source
//! topic deleted and re-created under the same name starts again at offset
//! 0, so resuming at the old topic's position would skip its first records
//! without a word (issue 14 item 7); a checkpoint taken for another target
//! topic (the naming changed) describes offsets of that other topic.
//!
//! Topic ids come from Metadata v10 (Kafka 2.8) on. Without them (older
//! brokers, records written by an older ferry) the name is all there is,
//! and a partition resumes as before.

use crate::checkpoint::{
    Checkpoint, CheckpointFit, Identity, TopicIds, checkpoint_fit, compare_topic_id,
};

/// What a partition start does about its topics' identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Resume from the known position, as always.
    Resume,
    /// Mirror from the source's log start into the (new) target topic as a
    /// fresh mirror: the known position and map describe another topic.
    Fresh { why: String },
    /// The source topic was re-created. Mirrored fresh from its log start
    /// if the target partition holds nothing; otherwise the partition
    /// stops, because appending the new topic's records after the old
    /// topic's would mix two topics in one mirror.
    SourceRecreated { why: String },
}

/// The verdict for a partition whose source and target topics now have
/// `current` ids and whose target topic is `target_topic`. `running`: the
/// ids this process started the partition with (a restart after a
/// failure); `checkpoint`: the one loaded at start.
pub(super) fn verdict(
    running: Option<TopicIds>,
    checkpoint: Option<&Checkpoint>,
    current: TopicIds,
    target_topic: &str,
) -> Verdict {
    if let Some(started) = running {
        return match compare_topic_id(started.source, current.source) {
            Identity::Recreated { stored, current } => Verdict::SourceRecreated {
                why: format!(
                    "the source topic was deleted and re-created while ferry ran (topic id {stored} is now {current})"
                ),
            },
            _ => Verdict::Resume,
        };
    }
    let Some(checkpoint) = checkpoint else {
        return Verdict::Resume;
    };
    match checkpoint_fit(checkpoint, current.source, target_topic, current.target) {
        CheckpointFit::Resume => Verdict::Resume,
        CheckpointFit::SourceRecreated { stored, current } => Verdict::SourceRecreated {
            why: format!(
                "the source topic was deleted and re-created since the checkpoint (topic id {stored} is now {current})"
            ),
        },
        CheckpointFit::TargetRenamed { stored, current } => Verdict::Fresh {
            why: format!(
                "the checkpoint was taken for target topic {stored:?}, the flow now mirrors to {current:?}"
            ),
        },
        // A target topic deleted (by an operator, or by retention tooling)
        // and re-created: ferry resumes from the checkpoint into it, as it
        // always has (docs/guarantees.md, "target topic deleted"); only the
        // old topic's offset map is dropped.
        CheckpointFit::TargetRecreated { .. } => Verdict::Resume,
    }
}

/// The reason a partition whose source topic was re-created is stopped.
pub(super) fn refusal(why: &str, target: &str) -> String {
    format!(
        "{why}; target partition {target} still holds records mirrored from the old topic, and \
         ferry does not append the new topic's records after them. Delete the target topic (ferry \
         re-creates it and mirrors the new topic from its beginning) or mirror the topic under \
         another target name, then restart the partition"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointValue;
    use crate::checkpoint::TopicId;

    fn id(n: u8) -> Option<TopicId> {
        TopicId::new([n; 16])
    }

    fn ids(source: u8, target: u8) -> TopicIds {
        TopicIds {
            source: id(source),
            target: id(target),
        }
    }

    fn checkpoint(ids: TopicIds, target_topic: &str) -> Checkpoint {
        Checkpoint {
            value: CheckpointValue {
                source_offset: 5000,
                target_topic: target_topic.to_owned(),
                target_offset: Some(5000),
                time_ms: 0,
            },
            ids,
            order: crate::checkpoint::WriteStamp::default(),
        }
    }

    #[test]
    fn same_topics_resume() {
        let c = checkpoint(ids(1, 2), "src.t");
        assert_eq!(verdict(None, Some(&c), ids(1, 2), "src.t"), Verdict::Resume);
        assert_eq!(
            verdict(Some(ids(1, 2)), None, ids(1, 2), "src.t"),
            Verdict::Resume
        );
        assert_eq!(verdict(None, None, ids(1, 2), "src.t"), Verdict::Resume);
    }

    #[test]
    fn unknown_ids_resume_by_name_as_before() {
        let old = checkpoint(TopicIds::default(), "src.t");
        assert_eq!(
            verdict(None, Some(&old), ids(1, 2), "src.t"),
            Verdict::Resume
        );
        let c = checkpoint(ids(1, 2), "src.t");
        assert_eq!(
            verdict(None, Some(&c), TopicIds::default(), "src.t"),
            Verdict::Resume
        );
    }

    #[test]
    fn a_recreated_source_topic_is_never_resumed_at_the_old_position() {
        let c = checkpoint(ids(1, 2), "src.t");
        assert!(matches!(
            verdict(None, Some(&c), ids(3, 2), "src.t"),
            Verdict::SourceRecreated { .. }
        ));
        assert!(matches!(
            verdict(Some(ids(1, 2)), None, ids(3, 2), "src.t"),
            Verdict::SourceRecreated { .. }
        ));
    }

    #[test]
    fn a_checkpoint_of_another_target_topic_starts_a_fresh_mirror() {
        let c = checkpoint(ids(1, 2), "old.t");
        assert!(matches!(
            verdict(None, Some(&c), ids(1, 9), "src.t"),
            Verdict::Fresh { .. }
        ));
    }

    #[test]
    fn a_recreated_target_topic_resumes_from_the_checkpoint() {
        let c = checkpoint(ids(1, 2), "src.t");
        assert_eq!(verdict(None, Some(&c), ids(1, 4), "src.t"), Verdict::Resume);
    }
}
