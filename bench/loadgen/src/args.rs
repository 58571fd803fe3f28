//! `--flag value` pairs and positional arguments, without a parser dependency.

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args {
    flags: HashMap<String, String>,
    pub positional: Vec<String>,
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut flags = HashMap::new();
        let mut positional = Vec::new();
        let mut index = 0;
        while index < argv.len() {
            let arg = &argv[index];
            if let Some(name) = arg.strip_prefix("--") {
                let value = argv
                    .get(index + 1)
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                flags.insert(name.to_string(), value.clone());
                index += 2;
            } else {
                positional.push(arg.clone());
                index += 1;
            }
        }
        Ok(Args { flags, positional })
    }

    pub fn string(&self, name: &str) -> Result<String, String> {
        self.flags
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required"))
    }

    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.flags
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    pub fn number<T: FromStr>(&self, name: &str) -> Result<T, String> {
        let text = self.string(name)?;
        text.parse()
            .map_err(|_| format!("--{name}: not a number: {text}"))
    }

    pub fn number_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.flags.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name}: not a number: {text}")),
        }
    }
}
