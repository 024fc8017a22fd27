//! Every label key the tool writes or reads, and the managed-by value, defined once.
//!
//! Compose's own keys are written so `docker compose ps`/`down` recognise a single-host
//! project as theirs; the `io.radar-deploy.*` keys carry what only this tool needs (which role
//! a container plays, which config it was created from). Each key's doc says who reads it.

/// The project a container, network or volume belongs to: the facade's only filter to find or
/// delete a single-host project (`docker::DockerClient::list_*`), as Compose's.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
/// The Compose service of a container; written for `docker compose ps`, not read by the tool.
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// The Compose container number; written for `docker compose ps`, not read by the tool.
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
/// Compose's one-off marker (`False`: a service container; `True`: the release command's
/// container, as `docker compose run` marks its own); written for Compose alone.
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
/// The Compose network key of the project's network; written for Compose alone.
pub const LABEL_NETWORK: &str = "com.docker.compose.network";
/// The Compose volume key of a named volume; written for Compose alone.
pub const LABEL_VOLUME: &str = "com.docker.compose.volume";
/// Marks every object the tool created, on either target; people and `docker ps --filter`
/// read it, the tool itself finds its objects by project or stack.
pub const LABEL_MANAGED_BY: &str = "io.radar-deploy.managed-by";
/// The value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "radar-deploy";

/// The role a container or service plays (`app`, `nginx`, …): read by `observed` to match
/// containers to the desired state, and by drills to find their target.
pub const LABEL_ROLE: &str = "io.radar-deploy.role";
/// An app instance's number: read by `observed` to order and match instances.
pub const LABEL_INSTANCE: &str = "io.radar-deploy.instance";
/// The hash of the configuration a container or service was created from: read by the plans
/// to decide keep or recreate/update.
pub const LABEL_CONFIG_HASH: &str = "io.radar-deploy.config-hash";
/// The hash of a reloadable file (nginx.conf) a container started with: read by `observed`
/// when the container has no reload marker yet, so the plan can reload instead of recreate.
pub const LABEL_RELOAD_HASH: &str = "io.radar-deploy.reload-hash";

/// The label `docker stack deploy` puts on every object of a stack; the facade's filter to
/// find a stack's services, configs, secrets and networks.
pub const LABEL_STACK: &str = "com.docker.stack.namespace";

/// The sha256 of the source an app image was built from: read by `app_image` to decide
/// whether the image on the daemon is stale.
pub const LABEL_APP_SOURCE: &str = "io.radar-deploy.app.source-sha256";
/// The builder image an app image was built with; for people inspecting the image.
pub const LABEL_APP_BUILDER: &str = "io.radar-deploy.app.builder";

/// The node label that pins a stateful Swarm service to the node holding its data; read by
/// the Swarm placement constraints and by the deploy that labels the nodes.
pub fn placement_label(project: &str, service: &str) -> String {
    format!("radar-deploy.{project}.{service}")
}
