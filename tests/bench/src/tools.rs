//! Function calling: the time from the client's tool results to the continuation's first token,
//! when the follow-up reaches the process parked on the calls, and when it cannot (the client
//! edited the calls, so a fresh process answers from the rendered conversation). Both are
//! measured in one run, interleaved, per CLI.

use std::time::Instant;

use serde_json::{Value, json};

use crate::client::{LoadClient, chat_stream_body, http_client, load_client};
use crate::stats::Lat;
use crate::{Env, log};

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

/// The first request (answered with a call) and its follow-up; `edit` changes the call's
/// arguments so no parked process can take the results.
async fn round(
    (http, load): (&reqwest::Client, &LoadClient),
    base: &str,
    model: &str,
    prefix: &str,
    i: usize,
    edit: bool,
) -> Result<std::time::Duration, String> {
    let user = json!({"role": "user", "content": format!(
        "round {i} [[tool:{prefix}get_weather:{{\"city\":\"Paris\"}}]]")});
    let first: Value = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": model, "tools": tools(), "messages": [user]}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mut assistant = first["choices"][0]["message"].clone();
    let Some(id) = assistant["tool_calls"][0]["id"].as_str().map(String::from) else {
        return Err(format!("no tool call: {first}"));
    };
    if edit {
        assistant["tool_calls"][0]["function"]["arguments"] = json!("{\"city\":\"Paris, FR\"}");
    }
    let body = json!({"model": model, "stream": true, "tools": tools(), "messages": [
        user, assistant, {"role": "tool", "tool_call_id": id, "content": "sunny"}]});
    let start = Instant::now();
    chat_stream_body(load, base, &body, start)
        .await
        .map(|t| t.ttft)
}

pub async fn scenario_tools(env: &Env) -> anyhow::Result<Value> {
    let rounds = env.args.tool_rounds;
    log(&format!(
        "scenario tools: {rounds} rounds per CLI, follow-up to the parked process vs a fresh one"
    ));
    let providers = format!(
        "[providers.claude]\nkind = \"claude\"\ncommand = \"{}\"\n\n[providers.gemini]\nkind = \"gemini\"\ncommand = \"{}\"\n",
        env.claude_wrapper.display(),
        env.gemini_wrapper.display()
    );
    let hub = env.start_hub("hub-tools", &providers).await?;
    let (http, load) = (http_client(), load_client());
    let mut out = json!({"rounds": rounds});
    for (model, prefix) in [("claude", "mcp__hub__"), ("gemini", "mcp_hub_")] {
        let (mut parked, mut fresh) = (Lat::default(), Lat::default());
        let mut errors = 0;
        // One round of each first, unmeasured: the first request of a tool set starts its process.
        for edit in [false, true] {
            let _ = round((&http, &load), &hub.base, model, prefix, 0, edit).await;
        }
        for i in 1..=rounds {
            for edit in [false, true] {
                match round((&http, &load), &hub.base, model, prefix, i, edit).await {
                    Ok(ttft) if edit => fresh.record(ttft),
                    Ok(ttft) => parked.record(ttft),
                    Err(e) => {
                        errors += 1;
                        log(&format!("{model} round {i}: {e}"));
                    }
                }
            }
        }
        log(&format!(
            "{model}: parked p50 {:.1} ms p99 {:.1} ms; fresh p50 {:.1} ms p99 {:.1} ms; {errors} errors",
            parked.p50(),
            parked.p99(),
            fresh.p50(),
            fresh.p99()
        ));
        out[model] = json!({
            "parked_ttft": parked.to_json(),
            "fresh_ttft": fresh.to_json(),
            "ratio_p50": parked.p50() / fresh.p50(),
            "errors": errors,
        });
    }
    hub.stop().await;
    Ok(out)
}
