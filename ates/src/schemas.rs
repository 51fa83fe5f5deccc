//! `ates schemas`: keep the committed JSON Schema files in step with the Rust event types.

use std::path::PathBuf;

use anyhow::bail;
use ates_schemas::files;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SchemasCommand {
    /// Write the schema file of every event version and pin new ones in schemas.lock.
    Write {
        /// The schemas folder (default: the one in this source tree).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fail if the files differ from the code or a released file changed.
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
            let written = files::write(&dir)?;
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
            let problems = files::check(&dir)?;
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
