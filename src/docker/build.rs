//! Image inspection and builds from a tar context (the reference app's image, src/app_image.rs).

use std::collections::{BTreeMap, HashMap};

use bollard::body_full;
use bollard::models::ImageConfig;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerClient, DockerError, Result};

/// One image build: a tar context with a `Dockerfile` at its root, built by the daemon's
/// classic builder (the one every daemon has; no BuildKit session needed).
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    pub context: &'a [u8],
    pub tag: &'a str,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

impl DockerClient {
    /// An image's config (labels, user, …), or `None` when the image is not on the daemon.
    async fn image_config(&self, image: &str) -> Result<Option<ImageConfig>> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(Some(i.config.unwrap_or_default())),
            Err(e) => {
                let err = DockerError::from_bollard("image", image, e);
                if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// An image's labels, or `None` when the image is not on the daemon.
    pub async fn image_labels(&self, image: &str) -> Result<Option<BTreeMap<String, String>>> {
        Ok(self
            .image_config(image)
            .await?
            .map(|c| c.labels.unwrap_or_default().into_iter().collect()))
    }

    /// The image's own user (`Config.User`; empty when it sets none), or `None` when the
    /// image is not on the daemon.
    pub async fn image_user(&self, image: &str) -> Result<Option<String>> {
        Ok(self
            .image_config(image)
            .await?
            .map(|c| c.user.unwrap_or_default()))
    }

    /// Builds and tags an image; every line of the build's output goes to `progress` as it
    /// arrives. A failed step (or a base image that cannot be pulled) is an error naming the
    /// tag, with the daemon's message.
    pub async fn build_image(
        &self,
        req: &BuildRequest<'_>,
        mut progress: impl FnMut(&str),
    ) -> Result<()> {
        let args: HashMap<String, String> = req.build_args.clone().into_iter().collect();
        let labels: HashMap<String, String> = req.labels.clone().into_iter().collect();
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(req.tag)
            .buildargs(&args)
            .labels(&labels)
            .rm(true)
            // A failed step's container goes too; the layers before it stay as the cache.
            .forcerm(true)
            .build();
        let body = body_full(req.context.to_vec().into());
        let mut stream = self.docker.build_image(opts, None, Some(body));
        let mut partial = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                bollard::errors::Error::DockerStreamError { error } => DockerError::Other {
                    kind: "image build",
                    name: req.tag.to_string(),
                    message: error.trim().to_string(),
                },
                e => DockerError::from_bollard("image build", req.tag, e),
            })?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Other {
                    kind: "image build",
                    name: req.tag.to_string(),
                    message: err.trim().to_string(),
                });
            }
            // The builder streams text in pieces that need not end at a newline.
            let text = info.stream.or(info.status).unwrap_or_default();
            partial.push_str(&text);
            while let Some(i) = partial.find('\n') {
                let line: String = partial.drain(..=i).collect();
                let line = line.trim_end();
                if !line.is_empty() {
                    progress(line);
                }
            }
        }
        if !partial.trim().is_empty() {
            progress(partial.trim_end());
        }
        Ok(())
    }
}
