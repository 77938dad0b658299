//! `edge-ad serve` and `edge-ad status`: the box on the line, as box.toml says.

use std::process::ExitCode;

use edge_ad_line::config::BoxConfig;
use edge_ad_line::counters::Counters;

use crate::args::{InstallArgs, RollbackArgs, ServeArgs, StatusArgs};
use crate::Result;

/// `edge-ad serve`: runs until SIGTERM/SIGINT, the trigger input closes, or a replayed source
/// runs out.
#[cfg(target_os = "linux")]
pub fn serve(a: ServeArgs) -> Result {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let path = a.config.path()?;
    let config = BoxConfig::load(path)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| crate::Error::Usage(format!("cannot handle signal {signal}: {e}")))?;
    }
    edge_ad_line::service::serve(&config, path, stop)?;
    Ok(ExitCode::SUCCESS)
}

/// `edge-ad serve` needs the Linux camera and GPIO drivers.
#[cfg(not(target_os = "linux"))]
pub fn serve(a: ServeArgs) -> Result {
    Err(crate::Error::Usage(format!(
        "{}: serve needs Linux (V4L2 and the GPIO character device)",
        a.config.path()?.display()
    )))
}

/// `edge-ad install`: the bundle into the inactive slot, checked there, then switched to. A
/// running service picks the new slot up by itself (and needs a calibration for the new model).
pub fn install(a: InstallArgs) -> Result {
    let path = a.config.path()?;
    let config = BoxConfig::load(path)?;
    let slots = edge_ad_line::slots::Slots::of(&config, path)?;
    let check = |copy: &std::path::Path| edge_ad_line::slots::check_bundle(&config, copy);
    let slot = slots.install(&a.bundle, &check, &mut |_| std::ops::ControlFlow::Continue(()))?;
    println!(
        "installed {} into slot {} and switched to it (previous: {}); calibrate again if the model changed",
        a.bundle.display(),
        slot.unwrap_or("-"),
        slots.previous().unwrap_or("none")
    );
    Ok(ExitCode::SUCCESS)
}

/// `edge-ad rollback`: back to the previous slot.
pub fn rollback(a: RollbackArgs) -> Result {
    let path = a.config.path()?;
    let config = BoxConfig::load(path)?;
    let slot = edge_ad_line::slots::Slots::of(&config, path)?.rollback()?;
    println!("rolled back: slot {slot} is current");
    Ok(ExitCode::SUCCESS)
}

/// `edge-ad status`: the counters the configuration names, and whether the box is calibrated. A
/// box whose service has not run yet (no counters file, as right after installing) gets zeros
/// and says so; a counters file that cannot be read is an error.
pub fn status(a: StatusArgs) -> Result {
    let config_path = a.config.path()?;
    let config = BoxConfig::load(config_path)?;
    let path = &config.counters.path;
    let saved = Counters::read_if_present(path)?;
    let fresh = saved.is_none();
    let counters = saved.unwrap_or_default();
    let s = counters.summary();
    if a.json.json {
        println!("{s}");
        return Ok(ExitCode::SUCCESS);
    }
    let calibration = &config.model.calibration;
    match std::fs::metadata(calibration) {
        Ok(_) => println!("calibration {}", calibration.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!(
            "not calibrated: no {} (as the service's user: edge-ad calibrate --config {} --shots 4)",
            calibration.display(),
            config_path.display()
        ),
        // Not readable by whoever asks (run as the service's user): say so, never "not calibrated".
        Err(e) => println!("calibration {}: cannot check: {e}", calibration.display()),
    }
    if fresh {
        println!("no counters yet: no {} (the service has not run)", path.display());
    } else {
        println!("counters since {} (Unix seconds), {}", counters.since_unix, path.display());
    }
    let ms = |k: &str| s["latency_ms"][k].as_f64().map_or("-".to_string(), |v| format!("{v:.1}"));
    println!(
        "triggers {}  OK {}  NG {}  missed {}  late {}  errors {}  faults {}  archive dropped {}  records dropped {}  mqtt dropped {}",
        counters.triggers,
        counters.ok,
        counters.ng,
        counters.missed,
        counters.late,
        counters.errors,
        counters.faults,
        counters.archive_dropped,
        counters.records_dropped,
        counters.mqtt_dropped
    );
    println!("latency ms: min {}  mean {}  p95 {}  max {}", ms("min"), ms("mean"), ms("p95"), ms("max"));
    Ok(ExitCode::SUCCESS)
}

/// `edge-ad hash-password`: one line from standard input (the password, without its newline)
/// to an Argon2id hash in PHC format on standard output, for box.toml's `web.users`.
pub fn hash_password() -> Result {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| {
        crate::Error::Usage(format!("hash-password: cannot read the password from standard input: {e}"))
    })?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    if password.len() < 8 {
        return Err(crate::Error::Usage(
            "hash-password: a password of at least 8 characters, on standard input".into(),
        ));
    }
    let hash =
        edge_ad_line::plant::web::hash(password).map_err(|e| crate::Error::Usage(format!("hash-password: {e}")))?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}
