//! `mcp-droplet-operator catalog import FILE|DIR... [-o yaml|json]`: MCP registry server.json
//! documents to MCPTemplates on stdout; what could not be mapped goes to stderr, one line per
//! field, naming the document. Fails (exit 1) when no document could be mapped.

use std::io::Write;
use std::path::{Path, PathBuf};

use kube::ResourceExt;
use thiserror::Error;

use crate::registry_import::{self, DocumentOutcome};

/// Arguments of `catalog`.
#[derive(clap::Args, Debug)]
pub struct CatalogArgs {
    /// What to do with the catalogue.
    #[command(subcommand)]
    pub command: CatalogCommand,
}

/// The subcommands of `catalog`.
#[derive(clap::Subcommand, Debug)]
pub enum CatalogCommand {
    /// Convert MCP registry server.json documents into MCPTemplates.
    Import(ImportArgs),
}

/// Arguments of `catalog import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// server.json files, registry API responses, or folders searched for *.json (recursively).
    #[arg(required = true, num_args = 1.., value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// Output format of the templates.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ImportFormat::Yaml)]
    pub output: ImportFormat,
}

/// How `catalog import` prints templates.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// YAML documents separated by `---` (for `kubectl apply -f -`).
    Yaml,
    /// One `v1` List holding the templates.
    Json,
}

/// What can stop `catalog import`.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// A path could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A folder held no `.json` file.
    #[error("{0}: no .json files found")]
    NoDocuments(String),
    /// Rendering the output failed.
    #[error("rendering the templates: {0}")]
    Render(String),
    /// Writing stdout failed.
    #[error("writing the templates: {0}")]
    Write(#[from] std::io::Error),
    /// No document gave a template (the reasons are printed per document before).
    #[error("none of the {0} document(s) could be mapped to an MCPTemplate")]
    NothingMapped(usize),
}

/// Runs `catalog`.
pub fn run(args: CatalogArgs) -> Result<(), CatalogError> {
    match args.command {
        CatalogCommand::Import(import) => {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            run_import(&import, &mut stdout.lock(), &mut stderr.lock())
        }
    }
}

/// Runs `catalog import`, writing templates to `out` and the report to `report`.
pub fn run_import(
    args: &ImportArgs,
    out: &mut dyn Write,
    report: &mut dyn Write,
) -> Result<(), CatalogError> {
    let mut files = Vec::new();
    for path in &args.paths {
        collect_json_files(path, &mut files)?;
    }
    let mut outcomes: Vec<DocumentOutcome> = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|source| CatalogError::Read {
            path: file.display().to_string(),
            source,
        })?;
        outcomes.extend(registry_import::import_text(
            &file.display().to_string(),
            &text,
        ));
    }
    registry_import::deduplicate_names(&mut outcomes);

    for outcome in &outcomes {
        let server = outcome
            .server_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        match &outcome.template {
            Some(t) => writeln!(
                report,
                "{}: mapped to MCPTemplate {}{server}",
                outcome.source,
                t.name_any()
            )?,
            None => writeln!(report, "{}: not mapped{server}", outcome.source)?,
        }
        for issue in &outcome.issues {
            writeln!(report, "{}: {issue}", outcome.source)?;
        }
    }
    let templates: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.template.as_ref())
        .collect();
    writeln!(
        report,
        "imported {} of {} document(s)",
        templates.len(),
        outcomes.len()
    )?;
    if templates.is_empty() {
        return Err(CatalogError::NothingMapped(outcomes.len()));
    }
    match args.output {
        ImportFormat::Yaml => {
            for t in &templates {
                let yaml =
                    serde_yaml_ng::to_string(t).map_err(|e| CatalogError::Render(e.to_string()))?;
                write!(out, "---\n{yaml}")?;
            }
        }
        ImportFormat::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": templates});
            let json = serde_json::to_string_pretty(&list)
                .map_err(|e| CatalogError::Render(e.to_string()))?;
            writeln!(out, "{json}")?;
        }
    }
    Ok(())
}

/// A file as given, or the `.json` files under a folder (recursively, sorted).
fn collect_json_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), CatalogError> {
    let read_err = |source| CatalogError::Read {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let before = files.len();
    walk(path, files)?;
    if files.len() == before {
        return Err(CatalogError::NoDocuments(path.display().to_string()));
    }
    Ok(())
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), CatalogError> {
    let read_err = |source| CatalogError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            walk(&entry, files)?;
        } else if entry.extension().is_some_and(|e| e == "json") {
            files.push(entry);
        }
    }
    Ok(())
}
