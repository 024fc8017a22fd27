use anyhow::Result;

use super::Globals;
use crate::cli::{DownArgs, Target};
use crate::engine;
use crate::outcome::Outcome;

pub async fn run(g: &Globals, args: DownArgs) -> Result<Outcome> {
    let DownArgs { target, volumes } = args;
    if target == Target::Swarm {
        let r = crate::swarm_engine::down(
            &g.docker().await?,
            &g.project,
            volumes,
            std::time::Duration::from_secs(120),
            &g.ui,
        )
        .await?;
        let kept = kept_volumes(r.kept_volumes);
        let labels = if r.node_labels > 0 {
            format!(", {} node labels", r.node_labels)
        } else {
            String::new()
        };
        g.ui.success(&format!(
            "{}: removed {} services, {} configs/secrets/networks, {} volumes{labels} from the swarm{kept}",
            g.project, r.services, r.objects, r.volumes
        ));
        for note in &r.elsewhere {
            g.ui.warn(note);
        }
        return Ok(Outcome::Success);
    }
    let r = engine::down(&g.docker().await?, &g.project, volumes, &g.ui).await?;
    let kept = kept_volumes(r.kept_volumes);
    g.ui.success(&format!(
        "{}: removed {} containers, {} network{}, {} volumes{kept}",
        g.project,
        r.containers,
        r.networks,
        if r.networks == 1 { "" } else { "s" },
        r.volumes
    ));
    Ok(Outcome::Success)
}

/// The note on the data volumes `down` kept; empty when it kept none.
fn kept_volumes(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(
            "; kept {n} volume{} (data; `down --volumes` deletes them)",
            if n == 1 { "" } else { "s" }
        ),
    }
}
