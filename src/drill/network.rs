//! `drill network`: one app instance is cut off the project network for `--cut-secs` under
//! load (`docker network disconnect`), then attached again under its alias.
//!
//! The stack has one bridge network (docs/design.md §4), so an instance cannot be cut off from
//! Redis and Postgres alone: it loses them and nginx alike, as an instance whose network link
//! fails does. Works on any daemon, local or remote; the instance is attached again also after
//! Ctrl-C or an error.
//!
//! What clients see: nginx's new connections to the lost address time out after
//! `proxy_connect_timeout` (2 s) and the request is retried on the next instance (slow, not
//! failed); after `max_fails` nginx stops choosing it for `fail_timeout`. A request already
//! sent on a kept-alive connection to it gets no answer at all: nginx waits
//! `proxy_read_timeout` before it gives up on that connection, longer than the load's client
//! timeout, so those requests fail, and the budget (`--max-failed`) counts them. Docker gives
//! the instance its old address back when it is free (it normally is: nginx resolved the name
//! to that address at load time); when it does not, the report says so, as nginx then needs a
//! reload (`radar-deploy up`).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::fault;
use super::service::load_clock_now;
use super::{
    assemble, first_served_by, interrupted, is_running, stop_load, Event, Measured, Options,
    Recovery, Report,
};
use crate::desired::Role;
use crate::observed::ObservedContainer;

const POLL: Duration = Duration::from_millis(100);

pub async fn run(
    opts: &Options,
    containers: &[ObservedContainer],
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let target = super::memory::pick_instance(opts, containers)?;
    let alias = target.alias();
    if !is_running(target) {
        bail!(
            "{alias} ({}) is not running ({}): a drill starts from a healthy deployment",
            target.name,
            target.status
        );
    }
    let docker = &opts.docker;
    let before = docker.container_facts(&target.name).await?;
    let network = format!("{}_default", opts.project);
    let Some(address) = before.address_on(&network).map(String::from) else {
        bail!(
            "{alias} is not attached to the project network {network} (it is on: {}): a drill starts from the deployment `up` made",
            before
                .addresses
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let instances = containers
        .iter()
        .filter(|c| c.role_kind() == Some(Role::App))
        .count();
    let mut notes = vec![];
    if instances < 2 {
        notes.push(format!(
            "only one app instance ({alias}): nothing can serve while it is cut off"
        ));
    }

    let (load, mut timeline) = opts.start_load(progress).await?;
    let seen_before = load.live.last_success_of(&alias).is_some();
    let fault_at_ms = load.now_ms();
    let started = Instant::now();
    if let Err(e) = docker.disconnect_network(&network, &target.name).await {
        load.stop().await;
        return Err(e.into());
    }
    let fault = format!(
        "{alias} ({}) cut off the network {network} for {} s (docker network disconnect)",
        target.name,
        opts.cut.as_secs()
    );
    progress(&fault);
    timeline.push(Event {
        at_ms: fault_at_ms,
        what: fault.clone(),
    });

    // The cut: it lasts --cut-secs (or until Ctrl-C), then the instance is attached again,
    // whatever else happened.
    while started.elapsed() < opts.cut && !interrupted() {
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let rejoin_at = load.now_ms();
    let rejoined = reconnect(opts, &network, &target.name, &alias).await;
    match &rejoined {
        Ok(()) => {
            progress(&format!("{alias} attached to {network} again"));
            timeline.push(Event {
                at_ms: rejoin_at,
                what: format!("{alias} attached to {network} again"),
            });
        }
        Err(e) => notes.push(format!(
            "{alias} could not be attached to {network} again: {e}\n  fix: docker network connect --alias {alias} {network} {}",
            target.name
        )),
    }
    match docker.container_facts(&target.name).await {
        Ok(f) => match f.address_on(&network) {
            Some(a) if a == address => {}
            Some(a) => notes.push(format!(
                "{alias} came back with address {a}, not {address}: nginx resolved {alias} when it \
                 loaded its config and keeps sending to the old address; `radar-deploy up` reloads it"
            )),
            None => {}
        },
        Err(e) => notes.push(format!("{alias} could not be inspected after the cut: {e}")),
    }

    // Recovered: nginx sends the instance requests again (it waits out fail_timeout first
    // when it marked it failed) and its answers are successful.
    let deadline = Instant::now() + opts.timeout;
    let duration_ms = opts.duration.as_millis() as u64;
    let mut recovered = None;
    let mut verified = None::<Result<u64, String>>;
    loop {
        let now = load.now_ms();
        if recovered.is_none()
            && load
                .live
                .last_success_of(&alias)
                .is_some_and(|t| t > rejoin_at)
        {
            recovered = Some(now);
            progress(&format!("{alias} answers through nginx again"));
            verified = Some(fault::verify(opts, || load.now_ms()).await);
        }
        let done = recovered.is_some() || !seen_before;
        if done && now >= duration_ms {
            break;
        }
        if interrupted() || (!done && Instant::now() >= deadline) {
            break;
        }
        load.tick(progress);
        tokio::time::sleep(POLL).await;
    }
    let result = stop_load(load, &mut timeline).await;
    let served = first_served_by(&result.samples, &alias, rejoin_at);
    if let Some(t) = served {
        timeline.push(Event {
            at_ms: t,
            what: format!("recovered: {alias} answered through nginx again"),
        });
    } else if seen_before {
        notes.push(format!(
            "nginx sent {alias} no successful request after it was attached again, within --timeout"
        ));
    }
    let verified = match verified {
        Some(v) => v,
        None => fault::verify(opts, || load_clock_now(&result, started, fault_at_ms)).await,
    };
    let verified = fault::record_verified(verified, &mut timeline, &mut notes);
    let first_error = fault::record_first_error(&result.samples, fault_at_ms, &mut timeline);
    timeline.sort_by_key(|e| e.at_ms);

    let after = |t: Option<u64>| t.map(|t| t.saturating_sub(fault_at_ms));
    let recovery = Recovery {
        target: alias.clone(),
        time_to_full_health_ms: after(served),
        serving_after_ms: after(served),
        first_error_after_ms: after(first_error),
        recovered_after_ms: after(served),
        verified_after_ms: after(verified),
        ..Default::default()
    };
    let budgets = vec![
        super::stats::judge_recovery(
            "time to verified",
            recovery.verified_after_ms,
            (opts.cut + opts.timeout).as_millis() as u64,
        ),
        fault::Check {
            name: format!("{alias} attached to the network again"),
            passed: rejoined.is_ok(),
            detail: match &rejoined {
                Ok(()) => "yes".into(),
                Err(e) => e.clone(),
            },
            budget: "always".into(),
        }
        .verdict(),
    ];
    Ok(assemble(
        opts,
        Measured {
            fault,
            fault_at_ms,
            result,
            recovery,
            timeline,
            budgets,
            notes,
        },
    ))
}

/// Attaches the instance again under its alias; retried, as a deployment left with an
/// instance off its network is worse than a slow drill.
async fn reconnect(
    opts: &Options,
    network: &str,
    container: &str,
    alias: &str,
) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..5 {
        match opts
            .docker
            .connect_network(network, container, &[alias.to_string()])
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => {
                // Already attached (a retry after a lost answer) is success.
                if let Ok(f) = opts.docker.container_facts(container).await {
                    if f.address_on(network).is_some() {
                        return Ok(());
                    }
                }
                last = e.to_string();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last)
}
