import GovukFabCLI

await GovukFab.mainWithDocumentedExitCodes()
