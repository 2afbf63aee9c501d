import Foundation

/// Inventories and playbooks decide which hosts a run touches and what it runs there as root,
/// so like OpenSSH's `StrictModes` they are read only when nobody else could have written them.
public enum ConfigurationFileTrust {
    /// Why `path` (a file, or a directory of them) must not be trusted, with the command that
    /// fixes it; nil when it is owned by root or this user and no one else can write it or the
    /// directory holding it (a sticky directory such as /tmp is fine: others cannot replace a file in it).
    public static func problem(with path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil } // reading it will say what is wrong
        if let problem = problem(info, describing: path) { return problem }
        let parent =
            ((path as NSString).deletingLastPathComponent as NSString).isEqual(to: "")
            ? "." : (path as NSString).deletingLastPathComponent
        var parentInfo = stat()
        guard stat(parent, &parentInfo) == 0 else { return nil }
        if parentInfo.st_mode & S_ISVTX != 0 { return nil }
        return problem(parentInfo, describing: parent)
    }

    private static func problem(_ info: stat, describing path: String) -> String? {
        let mode = info.st_mode & 0o7777
        if info.st_uid != 0 && info.st_uid != geteuid() {
            return "\(path) belongs to another user (uid \(info.st_uid)), who could change what runs; "
                + "copy it somewhere of yours, or fix with: chown \(geteuid()) \(shellQuoted(path))"
        }
        if mode & 0o022 != 0 {
            return
                "\(path) is writable by \(mode & 0o002 != 0 ? "anyone" : "its group") (mode \(String(mode, radix: 8))), "
                + "who could change what runs; fix with: chmod go-w \(shellQuoted(path))"
        }
        return nil
    }

    private static func shellQuoted(_ text: String) -> String {
        text.allSatisfy { $0.isLetter || $0.isNumber || "/._-".contains($0) }
            ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
