import Crypto
import Foundation

/// The goreplay binary a deploy uploads: the release build of this
/// repository's `goreplay` target, or a file the operator names (the CLI decides which,
/// building it if needed; see `ReplayBinaryLocator` in GovukFabCLI).
public struct ReplayBinary: Sendable, Hashable {
    public var path: String
    /// Lower-case hex SHA-256, as `sha256sum` prints it.
    public var sha256: String
    public var size: Int

    /// Reads and hashes `path` in 1 MiB pieces (binaries can be large).
    public static func load(path: String) throws(DeployError) -> ReplayBinary {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DeployError(
                host: "local", reason: "cannot read goreplay binary \(path)",
                remedy: "build it with `swift build -c release --product goreplay` or pass deploy-goreplay:binary=PATH")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size = 0
        while true {
            let chunk: Data
            do {
                chunk = try handle.read(upToCount: 1 << 20) ?? Data()
            } catch {
                throw DeployError(host: "local", reason: "reading \(path): \(error)")
            }
            if chunk.isEmpty { break }
            size += chunk.count
            hasher.update(data: chunk)
        }
        guard size > 0 else {
            throw DeployError(host: "local", reason: "goreplay binary \(path) is empty")
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return ReplayBinary(path: path, sha256: digest, size: size)
    }
}
