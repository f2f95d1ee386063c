//! `mcp-droplet-operator crds`: prints the CRDs, or writes one file per CRD (how `crds/` is made).

use std::io::Write;
use std::path::PathBuf;

use thiserror::Error;

use crate::api;

/// Arguments of `crds`.
#[derive(clap::Args, Debug)]
pub struct CrdsArgs {
    /// Write `<plural>.<group>.yaml` files into this folder instead of printing to stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// `yaml` (the CRDs) or `markdown` (the field reference kept in docs/crds.md).
    #[arg(long, value_enum, default_value_t = CrdsFormat::Yaml)]
    pub format: CrdsFormat,
}

/// Output format of `crds`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdsFormat {
    /// CustomResourceDefinition YAML.
    Yaml,
    /// A Markdown field reference.
    Markdown,
}

/// What can go wrong while rendering or writing CRDs.
#[derive(Debug, Error)]
pub enum CrdsError {
    /// A CRD could not be rendered as YAML.
    #[error("rendering CRD YAML: {0}")]
    Render(#[from] serde_yaml_ng::Error),
    /// Writing a file or stdout failed.
    #[error("writing {path}: {source}")]
    Write {
        /// What was being written.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Runs `crds`.
pub fn run(args: CrdsArgs) -> Result<(), CrdsError> {
    let crds = api::all_crds();
    if args.format == CrdsFormat::Markdown {
        let md = api::reference::markdown(&crds);
        return match args.out_dir {
            None => std::io::stdout().write_all(md.as_bytes()),
            Some(dir) => std::fs::write(dir.join("crds.md"), md),
        }
        .map_err(|source| CrdsError::Write {
            path: "the markdown reference".into(),
            source,
        });
    }
    match args.out_dir {
        None => {
            let yaml = api::crds_to_yaml(&crds)?;
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .map_err(|source| CrdsError::Write {
                    path: "stdout".into(),
                    source,
                })
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|source| CrdsError::Write {
                path: dir.display().to_string(),
                source,
            })?;
            for crd in &crds {
                let path = dir.join(api::crd_file_name(crd));
                let yaml = api::crds_to_yaml(std::slice::from_ref(crd))?;
                std::fs::write(&path, yaml).map_err(|source| CrdsError::Write {
                    path: path.display().to_string(),
                    source,
                })?;
            }
            Ok(())
        }
    }
}
