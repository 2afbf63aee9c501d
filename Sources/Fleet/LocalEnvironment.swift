import Foundation
import SSHConfig

/// The facts of the machine govuk-fab runs on: who runs it, their home, the agent socket,
/// whether stdin and stdout are terminals, and the environment
/// variables. The CLI reads them once (``current()``) and passes the value down, so no
/// library reads the process environment, and tests can pin every fact.
public struct LocalEnvironment: Sendable, Equatable {
    /// The local user name, from the password database as OpenSSH takes it (not `$USER`,
    /// which a shell or `sudo` may have left pointing at someone else).
    public var user: String
    public var userID: UInt32
    /// The home directory `~` means: the password database's, as OpenSSH's, else `$HOME`.
    public var homeDirectory: String
    /// Full host name (ssh_config's `%l`).
    public var hostName: String
    /// The environment variables; `XDG_STATE_HOME`/`XDG_CACHE_HOME` (audit log, host cache) come from here.
    public var variables: [String: String]
    public var stdinIsTerminal: Bool
    public var stdoutIsTerminal: Bool

    public init(
        user: String, userID: UInt32 = 0, homeDirectory: String, hostName: String = "localhost",
        variables: [String: String] = [:], stdinIsTerminal: Bool = false, stdoutIsTerminal: Bool = false
    ) {
        self.user = user
        self.userID = userID
        self.homeDirectory = homeDirectory
        self.hostName = hostName
        self.variables = variables
        self.stdinIsTerminal = stdinIsTerminal
        self.stdoutIsTerminal = stdoutIsTerminal
    }

    /// The running process's facts; the only place govuk-fab reads them.
    public static func current() -> LocalEnvironment {
        let ssh = SSHConfigEnvironment.current()
        return LocalEnvironment(
            user: ssh.localUser, userID: ssh.userID, homeDirectory: ssh.homeDirectory, hostName: ssh.localHostName,
            variables: ProcessInfo.processInfo.environment,
            stdinIsTerminal: isatty(STDIN_FILENO) == 1, stdoutIsTerminal: isatty(STDOUT_FILENO) == 1)
    }

    /// The same facts as ssh_config expansion sees them (`~`, `%u`, `%l`, `%i`, `Match localuser`).
    public var sshConfig: SSHConfigEnvironment {
        SSHConfigEnvironment(homeDirectory: homeDirectory, localUser: user, localHostName: hostName, userID: userID)
    }

    /// `$SSH_AUTH_SOCK` when set and not empty.
    public var agentSocket: String? {
        variables["SSH_AUTH_SOCK"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `~` and `~/…` as the home directory, `~name/…` as that user's (ssh_config's rule).
    public func expandTilde(_ path: String) -> String {
        sshConfig.expandTilde(path)
    }
}
