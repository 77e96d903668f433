//! Connecting to bmsd and mapping its answers to exit codes.

use crate::cli::Cli;
use crate::error::CliError;
use bms_proto::api::Method;
use bms_proto::client::{Client, ClientError};
use bms_proto::ErrorKind;
use std::io;

/// Calls one method on the daemon.
pub fn call<M: Method>(cli: &Cli, request: &M) -> Result<M::Reply, CliError> {
    let path = cli.socket.clone().unwrap_or_else(bms_proto::paths::default_socket);
    let mut client = Client::connect(&path).map_err(map_error)?;
    client.call(request).map_err(map_error)
}

fn map_error(e: ClientError) -> CliError {
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
        ClientError::Api(e) => {
            let msg = e.message.clone();
            match e.kind {
                ErrorKind::PermissionDenied => CliError::Denied(msg),
                ErrorKind::InvalidArgument => CliError::Usage(msg),
                _ => CliError::Failure(msg),
            }
        }
    }
}
