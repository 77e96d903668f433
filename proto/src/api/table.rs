//! The one list of the methods of `org.bms.Manager` (docs/architecture.md, "The method table").
//!
//! Each entry names the request type, its reply type, whether it writes (needs the admin role)
//! and whether it streams with `"more": true`. [`manager_methods!`](crate::manager_methods)
//! hands the list to a macro of the caller's: bms-proto builds the [`Method`](super::Method)
//! impls and [`METHODS`] from it, bmsd its dispatcher. Adding a method is one line here, its
//! types, its line in the interface description, and its service function in bmsd.

use super::*;

/// Calls `$callback! { Name => Reply, read|write, single|stream; ... }` with every method.
#[macro_export]
macro_rules! manager_methods {
    ($callback:ident) => {
        $callback! {
            Status => StatusReply, read, single;
            ListTargets => TargetList, read, single;
            GetTarget => TargetReply, read, single;
            AddTarget => TargetReply, write, single;
            UpdateTarget => TargetReply, write, single;
            RemoveTarget => Empty, write, single;
            ListJobs => JobList, read, single;
            GetJob => JobReply, read, single;
            AddJob => JobReply, write, single;
            UpdateJob => JobReply, write, single;
            RemoveJob => Empty, write, single;
            SetJobEnabled => JobReply, write, single;
            Apply => ApplyReply, write, single;
            ListAudit => AuditList, read, single;
            RunJob => RunReply, write, single;
            ListRuns => RunList, read, single;
            GetRun => RunDetail, read, single;
            CancelRun => RunReply, write, single;
            WatchRun => RunDetail, read, stream;
            ListSnapshots => SnapshotList, read, single;
            GetSnapshot => SnapshotReply, read, single;
            Restore => RestoreReply, write, stream;
            WatchEvents => EventReply, read, stream;
            CheckTarget => TargetCheck, write, single;
            Doctor => DoctorReply, read, single;
            ForgetSnapshots => ForgetReply, write, single;
            Prune => PruneReply, write, single;
            UnlockCheck => UnlockCheckReply, write, single;
            ListAlerts => AlertList, read, single;
            GetAlert => AlertDetail, read, single;
            AckAlert => AlertReply, write, single;
            ResolveAlert => AlertReply, write, single;
            TestChannel => TestChannelReply, write, single;
            SilenceAlerts => SilenceReply, write, single;
            Compliance => ComplianceReply, read, single;
            ComplianceHistory => ComplianceHistoryReply, read, single;
            Verify => VerifyReply, write, single;
            Report => ReportReply, read, single;
            RebuildCatalog => RebuildReply, write, single;
            ListPools => PoolList, read, single;
            GetPool => PoolReply, read, single;
            AddPool => PoolReply, write, single;
            ListMedia => MediaList, read, single;
            GetMedium => MediumReply, read, single;
            AddMedium => MediumReply, write, single;
            LabelMedium => MediumReply, write, single;
            MoveMedium => MediumReply, write, single;
            RetireMedium => MediumReply, write, single;
            EraseMedium => MediumReply, write, single;
            ExpireMedia => ExpireReply, write, single;
            MediaDue => MediaDueReply, read, single;
        }
    };
}

/// What the table says about one method, for code that works on names (tests, docs, adapters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    pub name: &'static str,
    pub writes: bool,
    pub streams: bool,
}

#[doc(hidden)]
#[macro_export]
macro_rules! __access_writes {
    (read) => {
        false
    };
    (write) => {
        true
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __mode_streams {
    (single) => {
        false
    };
    (stream) => {
        true
    };
}

macro_rules! build {
    ($($name:ident => $reply:ty, $access:ident, $mode:ident;)*) => {
        $(
            impl Method for $name {
                const NAME: &'static str = stringify!($name);
                const WRITES: bool = $crate::__access_writes!($access);
                const STREAMS: bool = $crate::__mode_streams!($mode);
                type Reply = $reply;
            }
        )*
        /// Every method of `org.bms.Manager`, in the order of the interface description.
        pub const METHODS: &[MethodInfo] = &[$(MethodInfo {
            name: stringify!($name),
            writes: $crate::__access_writes!($access),
            streams: $crate::__mode_streams!($mode),
        }),*];
    };
}

crate::manager_methods!(build);
