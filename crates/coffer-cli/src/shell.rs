//! `coffer interactive` (and plain `coffer`): a shell that keeps one session, and its login,
//! across commands. It reads commands from stdin line by line, so a script can be piped into
//! it; the prompt `coffer > ` is shown (on stderr) when stdin is a terminal, so that stdout
//! carries only the JSON results, one line per command.

use std::io::{BufRead, Write};

use clap::Parser;
use serde_json::Value;

use crate::args::{Cli, Command};
use crate::commands::Context;
use crate::error::{CliError, Result, report};

/// The prompt, after cloudhsm-cli's `aws-cloudhsm >`.
pub const PROMPT: &str = "coffer > ";

/// What one line of input asks for.
#[derive(Debug)]
enum Line {
    Nothing,
    Quit,
    Help(String),
    Run(Box<Command>),
}

/// Runs the shell until `quit`, `exit` or the end of input, showing the prompt if `prompt`
/// (stdin is a terminal). Returns the process exit status: 0, since each command's outcome is
/// in its own JSON line.
pub async fn run(
    ctx: &mut Context,
    input: impl BufRead,
    mut out: impl Write,
    prompt: bool,
) -> std::io::Result<i32> {
    let mut lines = input.lines();
    loop {
        if prompt {
            eprint!("{PROMPT}");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        match parse_line(&line) {
            Ok(Line::Nothing) => continue,
            Ok(Line::Quit) => break,
            Ok(Line::Help(text)) => writeln!(out, "{}", text.trim_end())?,
            Ok(Line::Run(command)) => {
                let (json, _) = report(ctx.run(&command).await);
                writeln!(out, "{json}")?;
            }
            Err(e) => writeln!(out, "{}", report(Err::<Value, _>(e)).0)?,
        }
        out.flush()?;
    }
    ctx.close().await;
    Ok(0)
}

fn parse_line(line: &str) -> Result<Line> {
    let words = tokenize(line)?;
    match words.first().map(String::as_str) {
        None => return Ok(Line::Nothing),
        Some(w) if w.starts_with('#') => return Ok(Line::Nothing),
        Some("quit" | "exit") if words.len() == 1 => return Ok(Line::Quit),
        Some("help") => return help(&words[1..]),
        _ => {}
    }
    let cli = Cli::try_parse_from(std::iter::once("coffer".to_owned()).chain(words.iter().cloned()));
    let cli = match cli {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => return Ok(Line::Help(e.to_string())),
        Err(e) => return Err(CliError::Usage(clean_usage(&e.to_string()))),
    };
    if cli.config.is_some() && words.iter().any(|w| w.starts_with("--config")) {
        return Err(CliError::Usage("--config is given when the shell starts, not per command".into()));
    }
    match cli.command {
        None => Ok(Line::Nothing),
        Some(Command::Interactive) => Err(CliError::Usage("already in the interactive shell".into())),
        Some(Command::Up(_)) => {
            Err(CliError::Usage("`up` runs a cluster in the foreground; run it outside the shell".into()))
        }
        Some(command) => Ok(Line::Run(Box::new(command))),
    }
}

/// `help` and `help <command…>`: clap's help text for that command.
fn help(path: &[String]) -> Result<Line> {
    let mut words: Vec<String> = vec!["coffer".into()];
    words.extend(path.iter().cloned());
    words.push("--help".into());
    match Cli::try_parse_from(words) {
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let mut text = e.to_string();
            if path.is_empty() {
                text.push_str(
                    "\nShell commands:\n  help [COMMAND...]  Show help\n  quit, exit         Leave\n",
                );
            }
            Ok(Line::Help(text))
        }
        Err(e) => Err(CliError::Usage(clean_usage(&e.to_string()))),
        Ok(_) => Err(CliError::Usage(format!("no help for '{}'", path.join(" ")))),
    }
}

/// clap's message on one line, without the `For more information…` trailer.
pub fn clean_usage(text: &str) -> String {
    let text = text.trim().trim_start_matches("error: ");
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    kept.join(" ")
}

/// Splits a line into words: whitespace separates them; single quotes keep everything
/// literally; double quotes keep spaces and allow `\"` and `\\`; a backslash outside quotes
/// escapes the next character.
pub fn tokenize(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(CliError::Usage("unterminated single quote".into())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(CliError::Usage("unterminated double quote".into())),
                        },
                        Some(c) => word.push(c),
                        None => return Err(CliError::Usage("unterminated double quote".into())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(CliError::Usage("a line cannot end with a backslash".into())),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_whitespace_and_quotes_group() {
        assert_eq!(tokenize("  key list --verbose ").unwrap(), ["key", "list", "--verbose"]);
        assert_eq!(tokenize(r#"--label "my key" x"#).unwrap(), ["--label", "my key", "x"]);
        assert_eq!(tokenize(r"--label 'a \ b'").unwrap(), ["--label", r"a \ b"]);
        assert_eq!(tokenize(r#"a\ b "q\"x" ''"#).unwrap(), ["a b", "q\"x", ""]);
        assert!(tokenize("'open").is_err());
        assert!(tokenize("\"open").is_err());
        assert!(tokenize("end\\").is_err());
    }

    #[test]
    fn shell_lines_parse_to_commands_or_shell_actions() {
        assert!(matches!(parse_line("").unwrap(), Line::Nothing));
        assert!(matches!(parse_line("# a comment").unwrap(), Line::Nothing));
        assert!(matches!(parse_line("quit").unwrap(), Line::Quit));
        assert!(matches!(parse_line("exit").unwrap(), Line::Quit));
        assert!(matches!(parse_line("user list").unwrap(), Line::Run(_)));
        let Line::Help(text) = parse_line("help").unwrap() else { panic!() };
        assert!(text.contains("quit") && text.contains("cluster"), "{text}");
        let Line::Help(text) = parse_line("help key generate-symmetric aes").unwrap() else { panic!() };
        assert!(text.contains("--key-length-bytes"), "{text}");
        assert!(matches!(parse_line("key list --help").unwrap(), Line::Help(_)));
    }

    #[test]
    fn some_commands_do_not_belong_in_the_shell() {
        assert!(parse_line("interactive").unwrap_err().to_string().contains("already"));
        assert!(parse_line("up --dir x").unwrap_err().to_string().contains("outside the shell"));
        assert!(parse_line("user list --config other.toml").unwrap_err().to_string().contains("--config"));
        let e = parse_line("key frobnicate").unwrap_err();
        assert!(matches!(e, CliError::Usage(_)));
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
