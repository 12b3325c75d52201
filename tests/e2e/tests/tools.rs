//! Function calling across keys: a turn waiting on tool results is continued only by the key
//! that started it. Another key that sends the same call ids gets an answer of its own, from a
//! fresh process, and the waiting process stays for its owner.

use e2e::{Hub, HubOptions, api_key_entry, asks_for_weather, weather_tool};
use serde_json::{Value, json};

const ALICE: &str = "lmh_alice_key_for_tools";
const MALLORY: &str = "lmh_mallory_key_for_tools";

/// A turn of `key` that the model answers with one call of `get_weather(city)`, parked on it.
struct ParkedCall {
    user: Value,
    answer: Value,
}

impl ParkedCall {
    async fn start(hub: &Hub, key: &str, city: &str) -> ParkedCall {
        let user = asks_for_weather("claude", city);
        let answer = chat(
            hub,
            key,
            json!({"model": "claude", "messages": [user], "tools": weather_tool()}),
        )
        .await;
        let call = &answer["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{answer}");
        ParkedCall { user, answer }
    }

    /// The follow-up an OpenAI client sends: the conversation, the call, its `result`.
    fn follow_up(&self, result: &str) -> Value {
        let message = &self.answer["choices"][0]["message"];
        json!({"model": "claude", "tools": weather_tool(), "messages": [
            self.user,
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": result},
        ]})
    }
}

async fn chat(hub: &Hub, key: &str, body: Value) -> Value {
    let r = hub
        .http
        .post(hub.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}\nhub log:\n{}", hub.log());
    body
}

fn continuations(metrics: &str, how: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("llm_mcp_hub_tool_continuations_total")
                && l.contains(&format!("how=\"{how}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_key_that_started_a_turn_continues_its_parked_process() {
    let mut opts = HubOptions::claude_only("");
    opts.top = format!(
        "{}{}",
        api_key_entry("alice", ALICE, None),
        api_key_entry("mallory", MALLORY, None)
    );
    let hub = Hub::start_with(opts).await;
    let parked = ParkedCall::start(&hub, ALICE, "Oslo").await;

    // Another key with the same ids: answered, but not by alice's waiting process.
    let stolen = chat(&hub, MALLORY, parked.follow_up("sunny (mallory)")).await;
    let text = stolen["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("sunny (mallory)"), "{text}");
    let metrics = hub.metrics().await;
    assert_eq!(continuations(&metrics, "parked"), 0, "{metrics}");
    assert_eq!(continuations(&metrics, "fresh"), 1, "{metrics}");

    // Alice's follow-up still finds her process.
    let mine = chat(&hub, ALICE, parked.follow_up("sunny (alice)")).await;
    assert_eq!(
        mine["choices"][0]["message"]["content"],
        "tool result: sunny (alice)"
    );
    assert_eq!(continuations(&hub.metrics().await, "parked"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_process_that_died_is_answered_afresh() {
    parked_process_dies(true).await;
}

/// The follow-up arrives while the killed process is still exiting: it is taken from the park
/// alive, fails before saying anything, and a fresh process answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_parked_process_dying_as_its_results_arrive_is_answered_afresh() {
    parked_process_dies(false).await;
}

async fn parked_process_dies(wait_until_dead: bool) {
    let mut opts = HubOptions::claude_only("warm_processes = 0");
    opts.top = api_key_entry("alice", ALICE, None);
    let hub = Hub::start_with(opts).await;
    let parked = ParkedCall::start(&hub, ALICE, "Lima").await;
    // The only CLI is the one waiting on the call.
    let pids = hub.cli_pids();
    assert!(!pids.is_empty());
    for &pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Dead: gone, or a zombie the hub has not reaped yet.
    let dead = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wait_until_dead && !pids.iter().all(|p| dead(*p)) {
        assert!(std::time::Instant::now() < deadline, "the CLI did not die");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let answer = chat(&hub, ALICE, parked.follow_up("mist in Lima")).await;
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("mist in Lima"), "{text}");
    let metrics = hub.metrics().await;
    assert_eq!(continuations(&metrics, "fresh"), 1, "{metrics}");
    assert_eq!(continuations(&metrics, "parked"), 0, "{metrics}");
}
