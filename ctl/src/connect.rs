//! Connecting to bmsd and mapping its answers to exit codes.

use crate::cli::Cli;
use crate::error::CliError;
use bms_proto::api::Method;
use bms_proto::client::{Client, ClientError};
use std::io;

/// Calls one method on the daemon.
pub fn call<M: Method>(cli: &Cli, request: &M) -> Result<M::Reply, CliError> {
    connect(cli)?.call(request).map_err(map_error)
}

/// Calls a streaming method, handing each reply to `on_reply` (return false to stop).
pub fn call_more<M: Method>(
    cli: &Cli,
    request: &M,
    on_reply: impl FnMut(M::Reply) -> bool,
) -> Result<(), CliError> {
    connect(cli)?
        .call_more(request, on_reply)
        .map_err(map_error)
}

fn connect(cli: &Cli) -> Result<Client, CliError> {
    let path = cli
        .socket
        .clone()
        .unwrap_or_else(bms_proto::paths::client_socket);
    Client::connect(&path).map_err(map_error)
}

pub fn map_error(e: ClientError) -> CliError {
    match e {
        ClientError::Connect { path, source } => match source.kind() {
            io::ErrorKind::PermissionDenied => CliError::Denied(format!(
                "permission denied on {}: be root or a member of group 'bms' (read) or 'bms-admin' (change)",
                path.display()
            )),
            _ => CliError::Unreachable(format!(
                "cannot reach bmsd at {}: {source}; is it running? (systemctl status bmsd, or --socket/BMS_SOCKET)",
                path.display()
            )),
        },
        ClientError::Io(e) => CliError::Unreachable(format!("lost the connection to bmsd: {e}")),
        ClientError::BadReply(m) => CliError::Failure(format!("bmsd sent an unexpected reply: {m}")),
        ClientError::Api(e) => CliError::daemon(e),
        e @ ClientError::TooLarge { .. } => CliError::Failure(e.to_string()),
    }
}
