import Foundation

/// The local facts ssh_config expansion depends on (`~`, `%d`, `%u`, `%l`, `%i`,
/// `Match localuser`, relative `Include`). Passed in so tests can pin them.
public struct SSHConfigEnvironment: Sendable, Equatable {
    public var homeDirectory: String
    public var localUser: String
    /// Full local host name (`%l`); `%L` is its first label.
    public var localHostName: String
    public var userID: UInt32

    public init(homeDirectory: String, localUser: String, localHostName: String, userID: UInt32) {
        self.homeDirectory = homeDirectory
        self.localUser = localUser
        self.localHostName = localHostName
        self.userID = userID
    }

    /// The running process's user, home directory (from the password database, as OpenSSH
    /// does, falling back to `$HOME`) and host name.
    public static func current() -> SSHConfigEnvironment {
        let uid = getuid()
        var home = ProcessInfo.processInfo.environment["HOME"] ?? "/"
        var name = ProcessInfo.processInfo.environment["USER"] ?? String(uid)
        if let entry = getpwuid(uid) {
            if let dir = entry.pointee.pw_dir { home = String(cString: dir) }
            if let login = entry.pointee.pw_name { name = String(cString: login) }
        }
        return SSHConfigEnvironment(
            homeDirectory: home, localUser: name,
            localHostName: ProcessInfo.processInfo.hostName, userID: UInt32(uid))
    }

    /// `~` and `~/…` become the home directory; `~name/…` that user's home if known.
    public func expandTilde(_ path: String) -> String {
        guard path.hasPrefix("~") else { return path }
        let afterTilde = path.dropFirst()
        let slash = afterTilde.firstIndex(of: "/") ?? afterTilde.endIndex
        let name = afterTilde[..<slash]
        let rest = afterTilde[slash...]
        if name.isEmpty { return homeDirectory + rest }
        guard let entry = getpwnam(String(name)), let dir = entry.pointee.pw_dir else { return path }
        return String(cString: dir) + rest
    }
}
