//! Settings built the way the binaries build them: from flags and the environment, with the
//! defaults declared on each setting, so no code repeats a default.

/// Parses `T` from command-line style `args` (no program name) and the environment.
pub fn parse<'a, T: clap::Args>(args: impl IntoIterator<Item = &'a str>) -> Result<T, clap::Error> {
    let command = T::augment_args(clap::Command::new("ates").no_binary_name(true));
    let matches = command.try_get_matches_from(args)?;
    T::from_arg_matches(&matches)
}
