//! When a service has converged, as a pure predicate over what Swarm reports: the executor's
//! wait (`swarm_engine::wait_converged`) polls the facade and asks [`convergence`] each time.

use super::observed::{ObservedService, ObservedTask};

/// Swarm's update states that end a rolling update without the new spec running.
const FAILED_UPDATE: [&str; 3] = ["rollback_completed", "paused", "rollback_paused"];
/// Swarm's update states of a rolling update (or its rollback) still in progress.
const UPDATING: [&str; 2] = ["updating", "rollback_started"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Convergence {
    Converged,
    /// Not yet; the text is the error the wait ends with at its deadline.
    Waiting(String),
    /// It never will: Swarm rolled the update back or paused it.
    Failed(String),
}

/// Whether `service` runs `replicas` tasks of the spec whose task hash is `hash` (healthy: a
/// task with a healthcheck counts as running only once healthy), with no rolling update in
/// progress and no task still stopping. `svc`: the service as listed; `tasks`: its tasks Swarm
/// wants running; `all_tasks`: every task Swarm still knows of it, those it stops included.
pub fn convergence(
    service: &str,
    replicas: u32,
    hash: &str,
    svc: Option<&ObservedService>,
    tasks: &[ObservedTask],
    all_tasks: &[ObservedTask],
) -> Convergence {
    let update = svc.and_then(|s| s.update_state.as_deref());
    if let Some(state) = update.filter(|u| FAILED_UPDATE.contains(u)) {
        return Convergence::Failed(format!(
            "service {service}: Swarm's rolling update ended in {state}: {}",
            svc.and_then(|s| s.update_message.as_deref())
                .unwrap_or_default()
        ));
    }
    let running = tasks
        .iter()
        .filter(|t| t.running && t.config_hash.as_deref() == Some(hash))
        .count();
    let updating = update.is_some_and(|u| UPDATING.contains(&u));
    // Tasks being stopped (scale down, replaced) still answer on their addresses and are
    // still in `tasks.app`: converged only once they are gone, so nginx's reload drops them.
    let stopping = all_tasks
        .iter()
        .filter(|t| t.running && t.desired != "running")
        .count();
    let want = replicas as usize;
    if running == want && tasks.len() == want && !updating && stopping == 0 {
        return Convergence::Converged;
    }
    let states: Vec<String> = tasks
        .iter()
        .map(|t| {
            format!(
                "slot {}: {} {}",
                t.slot.unwrap_or(0),
                t.state,
                t.message.trim()
            )
        })
        .collect();
    Convergence::Waiting(format!(
        "service {service}: {running}/{replicas} tasks running and healthy by the deadline \
         (tasks: {})\n  fix: `docker service ps --no-trunc {service}` shows why; raise \
         --timeout if the node is slow",
        if states.is_empty() {
            "none scheduled".to_string()
        } else {
            states.join("; ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(slot: i64, state: &str, desired: &str, hash: &str) -> ObservedTask {
        ObservedTask {
            id: format!("t{slot}"),
            slot: Some(slot),
            node_id: "n1".into(),
            state: state.into(),
            desired: desired.into(),
            running: state == "running",
            message: if state == "running" {
                "started"
            } else {
                "preparing"
            }
            .into(),
            container_id: Some(format!("c{slot}")),
            config_hash: Some(hash.into()),
            ..ObservedTask::default()
        }
    }

    fn svc(update: Option<&str>) -> ObservedService {
        ObservedService {
            name: "p_app".into(),
            update_state: update.map(String::from),
            update_message: update.map(|u| format!("update {u}")),
            ..Default::default()
        }
    }

    fn verdict(update: Option<&str>, tasks: &[ObservedTask], all: &[ObservedTask]) -> String {
        match convergence("p_app", 2, "h2", Some(&svc(update)), tasks, all) {
            Convergence::Converged => "converged".into(),
            Convergence::Waiting(why) => format!("waiting: {why}"),
            Convergence::Failed(why) => format!("failed: {why}"),
        }
    }

    #[test]
    fn every_task_of_the_current_spec_running_is_converged() {
        let tasks = [
            task(1, "running", "running", "h2"),
            task(2, "running", "running", "h2"),
        ];
        assert_eq!(verdict(Some("completed"), &tasks, &tasks), "converged");
        assert_eq!(verdict(None, &tasks, &tasks), "converged");
    }

    #[test]
    fn tasks_of_the_old_spec_do_not_count() {
        let tasks = [
            task(1, "running", "running", "h1"),
            task(2, "running", "running", "h2"),
        ];
        let v = verdict(Some("updating"), &tasks, &tasks);
        assert!(
            v.starts_with("waiting: service p_app: 1/2 tasks running"),
            "{v}"
        );
    }

    #[test]
    fn a_rolling_update_in_progress_is_not_converged() {
        let tasks = [
            task(1, "running", "running", "h2"),
            task(2, "running", "running", "h2"),
        ];
        assert!(verdict(Some("updating"), &tasks, &tasks).starts_with("waiting"));
        assert!(verdict(Some("rollback_started"), &tasks, &tasks).starts_with("waiting"));
    }

    #[test]
    fn a_task_still_stopping_holds_convergence() {
        let tasks = [
            task(1, "running", "running", "h2"),
            task(2, "running", "running", "h2"),
        ];
        let mut all = tasks.to_vec();
        all.push(task(3, "running", "shutdown", "h2"));
        assert!(verdict(None, &tasks, &all).starts_with("waiting"));
    }

    #[test]
    fn a_rolled_back_or_paused_update_fails_at_once_with_swarms_message() {
        let tasks = [task(1, "running", "running", "h1")];
        for state in ["rollback_completed", "paused", "rollback_paused"] {
            assert_eq!(
                verdict(Some(state), &tasks, &tasks),
                format!(
                    "failed: service p_app: Swarm's rolling update ended in {state}: update {state}"
                )
            );
        }
    }

    #[test]
    fn waiting_names_every_task_or_none_scheduled() {
        let tasks = [
            task(1, "running", "running", "h2"),
            task(2, "starting", "running", "h2"),
        ];
        let v = verdict(None, &tasks, &tasks);
        assert!(
            v.contains("1/2 tasks running and healthy by the deadline (tasks: slot 1: running started; slot 2: starting preparing)"),
            "{v}"
        );
        assert!(v.contains("docker service ps --no-trunc p_app"), "{v}");
        assert!(verdict(None, &[], &[])
            .contains("0/2 tasks running and healthy by the deadline (tasks: none scheduled)"));
    }

    #[test]
    fn more_tasks_than_replicas_is_not_converged() {
        let tasks = [
            task(1, "running", "running", "h2"),
            task(2, "running", "running", "h2"),
            task(3, "running", "running", "h2"),
        ];
        assert!(verdict(None, &tasks, &tasks).starts_with("waiting: service p_app: 3/2"));
    }
}
