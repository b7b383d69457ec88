//! Running ferry inside your own program: a config built in code, a custom
//! topic naming hook, and a shutdown future.
//!
//! ```sh
//! cargo run -p ferry-engine --example embed -- 127.0.0.1:9092 127.0.0.1:19092
//! ```
//! Mirrors every topic matching `orders.*` from the first cluster to the
//! second as `<topic>.replica`, until Ctrl-C; then drains and checkpoints.

use std::sync::Arc;

use ferry_engine::Engine;
use ferry_engine::config::{ClusterConfig, Config, FlowConfig};
use ferry_engine::topics::TopicNaming;

/// `orders` → `orders.replica`; anything already ending in `.replica` came
/// from a mirror, so loop detection can see it.
#[derive(Debug)]
struct ReplicaSuffix;

impl TopicNaming for ReplicaSuffix {
    fn target_topic(&self, _source_alias: &str, topic: &str) -> String {
        format!("{topic}.replica")
    }

    fn origin_alias<'a>(&self, topic: &'a str) -> Option<&'a str> {
        // The suffix does not say which cluster; name it after the suffix.
        topic.ends_with(".replica").then_some("primary")
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(source), Some(target)) = (args.next(), args.next()) else {
        eprintln!("usage: embed <source bootstrap> <target bootstrap>");
        std::process::exit(64);
    };
    let mut flow = FlowConfig::new("primary", "backup");
    flow.topics = vec!["orders.*".into()];
    flow.name = "orders-backup".into();
    let config = Config::new(
        [
            ("primary", ClusterConfig::new([source])),
            ("backup", ClusterConfig::new([target])),
        ],
        vec![flow],
    )?;
    let engine = Engine::new(config).with_topic_naming("orders-backup", Arc::new(ReplicaSuffix));
    let outcomes = engine
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    for o in outcomes {
        match o.result {
            Ok(stats) => println!("{}: {}", o.flow, stats.summary()),
            Err(e) => eprintln!("{}: failed: {e}", o.flow),
        }
    }
    Ok(())
}
