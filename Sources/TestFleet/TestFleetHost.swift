/// One host of a running `TestFleet`: an sshd on its own loopback address.
public struct TestFleetHost: Sendable, Hashable {
    /// The host's name, e.g. `host-1`; also its hostname inside its UTS namespace.
    public let name: String
    /// Its loopback address, e.g. `127.140.7.1`.
    public let address: String
    /// Its sshd port (2222 unless `TESTFLEET_PORT` says otherwise).
    public let port: Int
    /// Directory on the test machine that backs this host's private paths:
    /// the host's `/etc/govuk` is `stateRoot + "/etc/govuk"`.
    public let stateRoot: String
    /// The host's directory in the fleet (keys, sshd_config, logs).
    public let directory: String
    /// The paths this host sees privately (see `TestFleetOptions.privatePaths`).
    public let privatePaths: [String]

    /// The host's sshd log (LogLevel INFO: one "Accepted publickey" line per login)
    /// for the host's current run; earlier runs of a restarted host are in `sshd.log.old`.
    public var sshdLogPath: String { directory + "/sshd.log" }

    /// Where `path` as seen on this host lives on the test machine, e.g.
    /// `realPath("/etc/govuk/env.d/X")`. Paths outside the private paths are shared
    /// with the test machine and come back unchanged.
    public func realPath(_ path: String) -> String {
        for privatePath in privatePaths
        where path == privatePath || path.hasPrefix(privatePath + "/") {
            return stateRoot + path
        }
        return path
    }
}
