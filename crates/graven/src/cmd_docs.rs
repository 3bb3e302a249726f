//! `graven completions <shell>` and `graven man`: shell completion scripts and manual pages,
//! generated from the one clap definition of the command line (`main`'s `Cli`, handed in as a
//! `clap::Command`), so they cannot drift from what the binary accepts.
//!
//! Both are rendered into memory first and then written: the generators panic on a failed
//! write, and a closed pipe (`graven man | head`) must end quietly instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// The name the scripts complete and the pages are titled with.
const BIN: &str = "graven";

/// Prints the completion script of `cmd` for `shell` on stdout.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut script);
    std::io::stdout().lock().write_all(&script).context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints `cmd`'s page, `graven(1)`, on stdout, or with `out_dir` writes one page per command
/// and subcommand there (`graven.1`, `graven-serve.1`, `graven-identity-create.1`, ...) and
/// lists them.
pub fn man(cmd: clap::Command, out_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = out_dir else {
        let page = render(&cmd)?;
        std::io::stdout().lock().write_all(&page).context("writing the manual page")?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    let mut out = std::io::stdout().lock();
    for path in written {
        writeln!(out, "{}", path.display()).context("listing the pages written")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One command's page as roff.
fn render(cmd: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page).context("rendering the manual page")?;
    Ok(page)
}

/// Writes `cmd`'s page and, depth first, those of its visible subcommands.
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let page = render(cmd)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
