import Fleet
import FleetTasks
import Foundation

/// Finds the goreplay binary `deploy-goreplay` uploads, building it when needed, before any
/// task's preflight: `binary=PATH`, else `$GOVUK_FAB_GOREPLAY_BINARY`, else the checkout's
/// release build (`swift build -c release --product goreplay` when it is missing).
struct ReplayBinaryLocator: Sendable {
    var variables: [String: String]
    /// The checkout the binary was built in, if any.
    var checkoutRoot: String?
    /// Told before a build starts (the console's stderr line).
    var announce: @Sendable (String) -> Void

    func locate(explicit: String?) throws(DeployError) -> ReplayBinary {
        if let explicit { return try ReplayBinary.load(path: explicit) }
        if let fromEnvironment = variables["GOVUK_FAB_GOREPLAY_BINARY"], !fromEnvironment.isEmpty {
            return try ReplayBinary.load(path: fromEnvironment)
        }
        guard let root = checkoutRoot else {
            throw DeployError(
                host: "local", reason: "no goreplay binary given and no checkout found to build one in",
                remedy: "pass deploy-goreplay:binary=PATH")
        }
        let built = root + "/.build/release/goreplay"
        if !FileManager.default.isExecutableFile(atPath: built) {
            try build(in: root)
        }
        return try ReplayBinary.load(path: built)
    }

    /// `swift build`'s own output goes to this process's stderr: it is the operator's build log.
    private func build(in root: String) throws(DeployError) {
        announce("building goreplay (swift build -c release --product goreplay) …")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swift", "build", "-c", "release", "--product", "goreplay", "--package-path", root]
        process.standardOutput = FileHandle.standardError
        do {
            try process.run()
            process.waitUntilExit()
        } catch {
            throw DeployError(
                host: "local", reason: "cannot run swift build: \(error)", remedy: "pass deploy-goreplay:binary=PATH")
        }
        guard process.terminationStatus == 0 else {
            throw DeployError(
                host: "local", reason: "swift build of goreplay failed (exit \(process.terminationStatus))")
        }
    }
}

/// The repository checkout the running binary was built in, if any: the
/// nearest parent of the executable holding `Package.swift` and `inventories/`.
enum CheckoutLocator {
    static func root(executable: String = CommandLine.arguments.first ?? "") -> String? {
        var url = URL(fileURLWithPath: executable).resolvingSymlinksInPath()
        guard url.path.hasPrefix("/") else { return nil }
        for _ in 0..<6 {
            url.deleteLastPathComponent()
            let path = url.path
            if FileManager.default.fileExists(atPath: path + "/Package.swift"),
                FileManager.default.fileExists(atPath: path + "/inventories")
            {
                return path
            }
            if path == "/" { break }
        }
        return nil
    }
}
