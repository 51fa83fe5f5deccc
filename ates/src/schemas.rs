//! `ates schemas`: keep the committed JSON Schema files and the AsyncAPI document in step with
//! the Rust event types and the services' bus declarations.

use std::path::PathBuf;

use anyhow::bail;
use ates::asyncapi;
use ates_schemas::files;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SchemasCommand {
    /// Write the schema file of every event version, pin new ones in schemas.lock and write
    /// asyncapi.json.
    Write {
        /// The schemas folder (default: the one in this source tree).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fail if the files differ from the code, a released file changed or asyncapi.json is stale.
    Check {
        /// The schemas folder (default: the one in this source tree).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(command: SchemasCommand) -> anyhow::Result<()> {
    match command {
        SchemasCommand::Write { dir } => {
            let dir = dir.unwrap_or_else(files::source_dir);
            let mut written = files::write(&dir)?;
            if asyncapi::write(&dir)? {
                written.push(ates_schemas::asyncapi::FILE.to_owned());
            }
            if written.is_empty() {
                eprintln!("schemas in {} are up to date", dir.display());
            }
            for file in written {
                eprintln!("wrote {}", dir.join(file).display());
            }
            Ok(())
        }
        SchemasCommand::Check { dir } => {
            let dir = dir.unwrap_or_else(files::source_dir);
            let mut problems = files::check(&dir)?;
            problems.extend(asyncapi::check(&dir)?);
            for problem in &problems {
                eprintln!("{problem}");
            }
            if !problems.is_empty() {
                bail!("{} problem(s) with the schema files in {}", problems.len(), dir.display());
            }
            eprintln!("schemas in {} match the code and the lock", dir.display());
            Ok(())
        }
    }
}
