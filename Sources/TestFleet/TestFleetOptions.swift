/// What fleet to start: how many hosts, their names, which paths each host sees privately.
public struct TestFleetOptions: Sendable {
    /// The private paths every host gets unless told otherwise: the places govuk-fab
    /// tasks read and write per host (env.d flags, service pid files, logs, goreplay).
    public static let defaultPrivatePaths = [
        "/etc/govuk", "/etc/govuk-fab", "/run/govuk-fab", "/var/log/govuk-fab", "/opt/goreplay",
    ]

    /// Number of hosts, 1...250.
    public var hostCount: Int
    /// Hosts are named `<namePrefix>-1` ... `<namePrefix>-<hostCount>`.
    public var namePrefix: String = "host"
    /// Absolute paths each host sees as its own directory (bind mounts inside its
    /// mount namespace); everything else is the test machine's filesystem.
    public var privatePaths: [String] = TestFleetOptions.defaultPrivatePaths
    /// Where the fleet keeps keys, configs, logs and the private trees. When nil, a
    /// fresh directory is made under `GOVUK_FAB_TESTFLEET_BASE`, else `/dev/shm/govuk-testfleet`
    /// (tmpfs: deleting 200 hosts' files on the ext4 disk here takes seconds), else
    /// `/var/tmp/govuk-testfleet`; that directory is deleted by `stop()`.
    /// A directory given here must be empty or missing and is kept after `stop()`.
    public var workDirectory: String?
    /// Keep a generated work directory after `stop()` (to read sshd logs after a failure).
    /// `GOVUK_FAB_TESTFLEET_KEEP=1` in the environment has the same effect.
    public var keepWorkDirectory: Bool = false
    /// Seconds to wait for every sshd to listen.
    public var startTimeout: Int = 60

    public init(hostCount: Int, namePrefix: String = "host") {
        self.hostCount = hostCount
        self.namePrefix = namePrefix
    }
}
