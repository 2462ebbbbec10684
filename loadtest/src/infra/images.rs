//! Which container image runs each service, per image set.
//!
//! Two sets run containers: `official` (pinned tags of the upstream images, pulled on first
//! use) and `debian` (built here from Debian trixie packages by `scripts/build-images.sh`,
//! no registry needed). A third, `external`, runs nothing and takes URLs from the environment.

use std::fmt;
use std::str::FromStr;

use super::InfraError;

/// The recipe revision of the `debian` images; `scripts/build-images.sh` builds `...-r2`.
/// Bump both together when the recipe changes, so stale images are rebuilt, not reused.
pub const DEBIAN_RECIPE: &str = "r2";

/// Root password of the MariaDB containers we start (never used outside loopback).
pub const MARIADB_ROOT_PASSWORD: &str = "loadtest";
/// The debian MariaDB image's command (`scripts/build-images.sh`): it passes its arguments on
/// to `mariadbd`.
pub const DEBIAN_MARIADB_START: &str = "/usr/local/bin/start-mariadb";

/// The three services every scenario needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    RabbitMq,
    Redis,
    MariaDb,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 3] = [ServiceKind::RabbitMq, ServiceKind::Redis, ServiceKind::MariaDb];

    /// The port the service listens on inside its container.
    pub fn container_port(self) -> u16 {
        match self {
            ServiceKind::RabbitMq => 5672,
            ServiceKind::Redis => 6379,
            ServiceKind::MariaDb => 3306,
        }
    }

    /// Short lowercase name, used in labels, messages and CLI output.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::RabbitMq => "rabbitmq",
            ServiceKind::Redis => "redis",
            ServiceKind::MariaDb => "mariadb",
        }
    }

    /// The environment variable that gives this service's URL for the `external` set.
    pub fn url_env(self) -> &'static str {
        match self {
            ServiceKind::RabbitMq => "LOADTEST_AMQP_URL",
            ServiceKind::Redis => "LOADTEST_REDIS_URL",
            ServiceKind::MariaDb => "LOADTEST_MYSQL_URL",
        }
    }

    /// The client URL of a container of this kind published on `127.0.0.1:port`.
    pub fn loopback_url(self, port: u16) -> String {
        match self {
            // `%2f` is the default vhost `/`.
            ServiceKind::RabbitMq => format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            ServiceKind::Redis => format!("redis://127.0.0.1:{port}/"),
            ServiceKind::MariaDb => format!("mysql://root:{MARIADB_ROOT_PASSWORD}@127.0.0.1:{port}"),
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The image set a user asks for (`--images`, or `LOADTEST_IMAGES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageSetChoice {
    /// `debian` when all its images exist locally, else `official`.
    #[default]
    Auto,
    Official,
    Debian,
    External,
}

/// The image set actually used, once `auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSet {
    Official,
    Debian,
    External,
}

impl FromStr for ImageSetChoice {
    type Err = InfraError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "official" => Ok(Self::Official),
            "debian" => Ok(Self::Debian),
            "external" => Ok(Self::External),
            _ => Err(InfraError::UnknownImageSet(s.to_string())),
        }
    }
}

impl fmt::Display for ImageSetChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Official => "official",
            Self::Debian => "debian",
            Self::External => "external",
        })
    }
}

impl fmt::Display for ImageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Official => "official",
            Self::Debian => "debian",
            Self::External => "external",
        })
    }
}

/// One image to run: `name:tag`, its environment, and how to get it when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub name: String,
    pub tag: String,
    pub env: Vec<(String, String)>,
    /// Arguments replacing the image's default command (empty: keep it).
    pub cmd: Vec<String>,
    /// True when the image can only be built locally (no registry has it).
    pub local_only: bool,
}

impl ImageSpec {
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// What to tell a user whose engine does not have this image.
    pub fn remedy(&self) -> String {
        if self.local_only {
            "build it without a registry: sudo scripts/build-images.sh".to_string()
        } else {
            "pull it where a registry is reachable (docker pull ...), or build the registry-free \
             images with `sudo scripts/build-images.sh` and use --images debian (LOADTEST_IMAGES=debian)"
                .to_string()
        }
    }

    /// Parses an override such as `myregistry/rabbitmq:4.0` (the tag is required).
    pub fn parse_override(reference: &str, local_only: bool) -> Option<ImageSpec> {
        let (name, tag) = reference.rsplit_once(':')?;
        if name.is_empty() || tag.is_empty() || tag.contains('/') {
            return None;
        }
        Some(ImageSpec { name: name.into(), tag: tag.into(), env: Vec::new(), cmd: Vec::new(), local_only })
    }
}

/// The image of `kind` in `set` (`None` for `external`).
pub fn image_for(set: ImageSet, kind: ServiceKind) -> Option<ImageSpec> {
    let spec = |name: &str, tag: String, env: &[(&str, &str)], local_only| ImageSpec {
        name: name.to_string(),
        tag,
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        cmd: Vec::new(),
        local_only,
    };
    let mariadb_env = [("MARIADB_ROOT_PASSWORD", MARIADB_ROOT_PASSWORD)];
    match set {
        ImageSet::External => None,
        ImageSet::Official => Some(match kind {
            ServiceKind::RabbitMq => spec("rabbitmq", "4.0-management".into(), &[], false),
            ServiceKind::Redis => spec("redis", "8.0".into(), &[], false),
            // Many instances and tests share one server: lift the 151-connection default.
            // (The debian image's start script sets the same.)
            ServiceKind::MariaDb => ImageSpec {
                cmd: vec!["--max-connections=2000".into()],
                ..spec("mariadb", "11.8".into(), &mariadb_env, false)
            },
        }),
        ImageSet::Debian => Some(match kind {
            ServiceKind::RabbitMq => spec("loadtest-debian/rabbitmq", format!("4.0-{DEBIAN_RECIPE}"), &[], true),
            ServiceKind::Redis => spec("loadtest-debian/redis", format!("8.0-{DEBIAN_RECIPE}"), &[], true),
            ServiceKind::MariaDb => {
                spec("loadtest-debian/mariadb", format!("11.8-{DEBIAN_RECIPE}"), &mariadb_env, true)
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_set_names_parse_case_insensitively() {
        assert_eq!("Debian".parse::<ImageSetChoice>().unwrap(), ImageSetChoice::Debian);
        assert_eq!("official".parse::<ImageSetChoice>().unwrap(), ImageSetChoice::Official);
        assert_eq!("external".parse::<ImageSetChoice>().unwrap(), ImageSetChoice::External);
        assert_eq!("auto".parse::<ImageSetChoice>().unwrap(), ImageSetChoice::Auto);
    }

    #[test]
    fn an_unknown_image_set_is_refused_with_the_choices() {
        let err = "ubuntu".parse::<ImageSetChoice>().unwrap_err().to_string();
        assert!(err.contains("ubuntu"), "{err}");
        assert!(err.contains("auto, official, debian, external"), "{err}");
    }

    #[test]
    fn debian_images_carry_the_recipe_revision_of_the_build_script() {
        let script = include_str!("../../../scripts/build-images.sh");
        assert!(script.contains(&format!("recipe={DEBIAN_RECIPE}")));
        for kind in ServiceKind::ALL {
            let image = image_for(ImageSet::Debian, kind).unwrap();
            let script_name = image.reference().replace(DEBIAN_RECIPE, "$recipe");
            assert!(script.contains(&script_name), "{script_name} is not built by build-images.sh");
        }
    }

    #[test]
    fn overrides_need_a_name_and_a_tag() {
        let spec = ImageSpec::parse_override("registry.local:5000/rabbitmq:4.0", false).unwrap();
        assert_eq!(spec.name, "registry.local:5000/rabbitmq");
        assert_eq!(spec.tag, "4.0");
        assert!(ImageSpec::parse_override("rabbitmq", false).is_none());
        assert!(ImageSpec::parse_override("registry.local:5000/rabbitmq", false).is_none());
    }
}
