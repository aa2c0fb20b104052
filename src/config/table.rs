//! The machinery behind the settings table in [`super`]: one macro turns each row (name, type,
//! default, flag, bounds, doc) into the typed section struct, its `Default`, its flags (with the
//! default in the help), its config-file keys, and the merge that validates every value the same
//! way whether it came from the default, the file or a flag.

use super::ConfigError;
use std::fmt::Display;
use std::str::FromStr;

/// Parses a default from the table; the table is tested, so a bad default is a bug.
pub(super) fn parse_default<T>(key: &'static str, raw: &str) -> T
where
    T: FromStr,
    T::Err: Display,
{
    raw.parse()
        .unwrap_or_else(|e| panic!("the default of {key} ({raw:?}) is invalid: {e}"))
}

/// Parses a flag's value; the error names the setting and the flag.
pub(super) fn parse_flag<T>(key: &'static str, flag: &str, raw: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw.trim().parse().map_err(|e| ConfigError::Invalid {
        key,
        message: format!("--{flag}={raw:?}: {e}"),
    })
}

/// Parses a config-file value (a TOML string, integer, float or boolean, read as its text).
pub(super) fn parse_file<T>(key: &'static str, value: &toml::Value) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    let raw = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => {
            return Err(ConfigError::Invalid {
                key,
                message: "must be a string or a number".into(),
            })
        }
    };
    raw.trim().parse().map_err(|e| ConfigError::Invalid {
        key,
        message: format!("{raw:?} in the config file: {e}"),
    })
}

/// Checks `value` against the table's inclusive bounds.
pub(super) fn check_range<T>(
    key: &'static str,
    value: &T,
    lo: &'static str,
    hi: &'static str,
) -> Result<(), ConfigError>
where
    T: FromStr + PartialOrd + Display,
    T::Err: Display,
{
    let (min, max): (T, T) = (parse_default(key, lo), parse_default(key, hi));
    if *value < min || *value > max {
        return Err(ConfigError::Invalid {
            key,
            message: format!("must be between {lo} and {hi}, got {value}"),
        });
    }
    Ok(())
}

/// The help line of a flag: its doc and, when it has one, its default.
pub(super) fn help(doc: &[&str], default: Option<&str>) -> String {
    let doc = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    match default {
        Some(d) => format!("{doc} [default: {d}]"),
        None => doc,
    }
}

/// Settings without a default (`= None`) are `Option`s in the config.
macro_rules! setting_type {
    ($ty:ty, None) => { Option<$ty> };
    ($ty:ty, $default:literal) => { $ty };
}

macro_rules! setting_default {
    ($key:expr, $ty:ty, None) => {
        None
    };
    ($key:expr, $ty:ty, $default:literal) => {
        $crate::config::table::parse_default::<$ty>($key, $default)
    };
}

macro_rules! setting_value {
    ($value:expr, None) => {
        Some($value)
    };
    ($value:expr, $default:literal) => {
        $value
    };
}

macro_rules! setting_default_text {
    (None) => {
        None
    };
    ($default:literal) => {
        Some($default)
    };
}

/// The settings table. Per section: `name: Section, Args, File { rows }`; per row:
/// `/// doc` then `field: Type = "default" (or None), "flag.name", "VALUE" [, "min" ..= "max"];`.
macro_rules! settings {
    ($(
        $(#[doc = $sdoc:literal])*
        $section:ident: $Section:ident, $Args:ident, $File:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident: $ty:ty = $default:tt, $flag:literal, $value_name:literal
                    $(, $lo:literal ..= $hi:literal)?;
            )+
        }
    )+) => {
        /// The whole configuration of the agent: defaults, then the `--config.file`, then the
        /// flags, every value validated on the way in.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $sdoc])* pub $section: $Section, )+
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $section: $Section::default(), )+ }
            }
        }

        $(
            $(#[doc = $sdoc])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $Section {
                $( $(#[doc = $doc])+ pub $field: setting_type!($ty, $default), )+
            }

            impl Default for $Section {
                fn default() -> Self {
                    $Section {
                        $( $field: setting_default!(
                            concat!(stringify!($section), ".", stringify!($field)),
                            $ty,
                            $default
                        ), )+
                    }
                }
            }

            #[doc = concat!("Flags of the `", stringify!($section), "` settings.")]
            #[derive(Debug, Clone, Default, clap::Args)]
            pub struct $Args {
                $(
                    #[arg(
                        id = $flag,
                        long = $flag,
                        value_name = $value_name,
                        allow_hyphen_values = true,
                        help = $crate::config::table::help(&[$($doc),+], setting_default_text!($default)),
                    )]
                    pub $field: Option<String>,
                )+
            }

            #[derive(Debug, Default, serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct $File {
                $( $field: Option<toml::Value>, )+
            }

            impl $Section {
                /// The file's values, then the flags', each parsed and checked against its bounds.
                fn merge(&mut self, file: Option<$File>, args: &$Args) -> Result<(), ConfigError> {
                    let file = file.unwrap_or_default();
                    $(
                        let key = concat!(stringify!($section), ".", stringify!($field));
                        if let Some(v) = &file.$field {
                            self.$field =
                                setting_value!($crate::config::table::parse_file::<$ty>(key, v)?, $default);
                        }
                        if let Some(v) = &args.$field {
                            self.$field = setting_value!(
                                $crate::config::table::parse_flag::<$ty>(key, $flag, v)?,
                                $default
                            );
                        }
                        $( $crate::config::table::check_range::<$ty>(key, &self.$field, $lo, $hi)?; )?
                    )+
                    Ok(())
                }
            }
        )+

        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileConfig {
            $( $section: Option<$File>, )+
        }

        /// The flag of every setting, grouped by section.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct SettingArgs {
            $( #[command(flatten)] pub $section: $Args, )+
        }

        impl Config {
            fn merge(&mut self, file: FileConfig, args: &SettingArgs) -> Result<(), ConfigError> {
                $( self.$section.merge(file.$section, &args.$section)?; )+
                Ok(())
            }

            /// Every setting's key (`section.field`) and flag, in table order.
            pub fn keys() -> Vec<(&'static str, &'static str)> {
                vec![$($( (concat!(stringify!($section), ".", stringify!($field)), $flag), )+)+]
            }
        }
    };
}

pub(super) use {setting_default, setting_default_text, setting_type, setting_value, settings};
