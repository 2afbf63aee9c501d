import Crypto
import Foundation

/// The goreplay binary a deploy uploads: the release build of this
/// repository's `goreplay` target, or a file the operator names.
public struct ReplayBinary: Sendable, Hashable {
    public var path: String
    /// Lower-case hex SHA-256, as `sha256sum` prints it.
    public var sha256: String
    public var size: Int

    /// Reads and hashes `path` in 1 MiB pieces (binaries can be large).
    public static func load(path: String) throws(DeployError) -> ReplayBinary {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DeployError(host: "local", reason: "cannot read goreplay binary \(path)",
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

    /// Finds the binary: an explicit path, `$GOVUK_FAB_GOREPLAY_BINARY`, or the
    /// checkout's release build, building it when it is missing.
    public static func locate(explicit: String?, environment: [String: String], checkoutRoot: String?,
                              build: Bool = true) throws(DeployError) -> ReplayBinary {
        if let explicit { return try load(path: explicit) }
        if let fromEnvironment = environment["GOVUK_FAB_GOREPLAY_BINARY"], !fromEnvironment.isEmpty {
            return try load(path: fromEnvironment)
        }
        guard let root = checkoutRoot else {
            throw DeployError(host: "local", reason: "no goreplay binary given and no checkout found to build one in",
                              remedy: "pass deploy-goreplay:binary=PATH")
        }
        let built = root + "/.build/release/goreplay"
        if !FileManager.default.isExecutableFile(atPath: built) && build {
            FileHandle.standardError.write(Data("govuk-fab: building goreplay (swift build -c release --product goreplay) …\n".utf8))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["swift", "build", "-c", "release", "--product", "goreplay", "--package-path", root]
            process.standardOutput = FileHandle.standardError
            do {
                try process.run()
                process.waitUntilExit()
            } catch {
                throw DeployError(host: "local", reason: "cannot run swift build: \(error)", remedy: "pass deploy-goreplay:binary=PATH")
            }
            guard process.terminationStatus == 0 else {
                throw DeployError(host: "local", reason: "swift build of goreplay failed (exit \(process.terminationStatus))")
            }
        }
        return try load(path: built)
    }
}
