//! `gantry lint`, `gantry compile` and `gantry schema`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::context::{local_context, pipeline_file, read_pipeline};
use crate::{CompileArgs, Format, LintArgs};

/// Lints every file; exit 1 when any has an error.
pub fn lint(args: LintArgs) -> anyhow::Result<ExitCode> {
    let files = if args.files.is_empty() {
        vec![pipeline_file(None)?]
    } else {
        args.files
    };
    let mut failed = false;
    let mut all = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let source = read_pipeline(file)?;
        let diagnostics = gantry_pipeline::lint(&name, &source);
        failed |= diagnostics
            .iter()
            .any(|d| d.severity == gantry_pipeline::Severity::Error);
        match args.format {
            Format::Text => {
                for d in &diagnostics {
                    println!("{}", d.render(&source));
                }
            }
            Format::Json => all.extend(diagnostics),
        }
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&all)?),
        Format::Text if !failed => eprintln!("{} file(s) checked: no problems", files.len()),
        Format::Text => {}
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints the compiled plans as JSON; diagnostics and exit 1 when it does not compile.
pub fn compile(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let file: PathBuf = pipeline_file(args.file)?;
    let name = file.display().to_string();
    let source = read_pipeline(&file)?;
    let mut ctx = local_context(&std::env::current_dir()?, &args.event);
    ctx.clone = !args.no_clone;
    match gantry_pipeline::compile(&name, &source, &ctx) {
        Ok(compiled) => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &compiled)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{}", d.render(&source));
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints the JSON schema of `.pipeline.yml`.
pub fn schema() -> anyhow::Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&gantry_pipeline::json_schema())?
    );
    Ok(ExitCode::SUCCESS)
}
