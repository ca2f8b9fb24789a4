/*
 * SlicerGISTRisk: import_tile_predictions.groovy
 *
 * Purpose: add our tile predictions for the current image back into QuPath as tile (or detection)
 *          objects, classified by predicted tissue class and carrying the measurement
 *          "tumour probability" (and prob_<class> for every class), so that a pathologist can review
 *          the classifier on the slide: Measure > Show measurement maps > "tumour probability".
 *          The file is the one qupath_bridge.geojson.write_tile_predictions writes (QuPath 0.4+ GeoJSON),
 *          looked up as <image name without its extension><fileSuffix> in inputDir (same name
 *          rule as export_annotations_geojson.groovy; `gistrisk pathology features --review-geojson`
 *          names the files by this rule from each slide's file name). Images of one project whose
 *          names give the same file name (case ignored) are refused with an error naming them:
 *          the file cannot say which of them it belongs to.
 * QuPath version: written for 0.4-0.6, not run here: no QuPath on the build machines.
 *          The input form is covered by tests/qupath_bridge/test_qp_groovy.py and test_qp_tiles.py.
 * Run:     GUI: Automate > Script editor, open this file, then Run > Run for project (or Run, for the open image).
 *          Headless: QuPath script -p /path/to/project.qpproj -s -a inputDir=/path/to/predictions import_tile_predictions.groovy
 *          (-s saves the added objects into the project; without it nothing is kept).
 * Parameters (defaults in the block below; headless runs override them with -a name=value):
 *   inputDir          folder holding the prediction files; '' = <project folder>/tile_predictions
 *   fileSuffix        appended to the image's base name to find its file
 *   measurementName   measurement every imported object must carry (and that the heat map shows)
 *   replaceExisting   true = first remove detections carrying measurementName (an earlier import)
 */

import qupath.lib.io.PathIO

// ---- Parameters ----
def params = [
    inputDir       : '',
    fileSuffix     : '.tiles.geojson',
    measurementName: 'tumour probability',
    replaceExisting: true,
]
// ---- End of parameters ----

// Headless: QuPath puts the -a values in 'args'; in the GUI there is no such variable.
def cliArgs = binding.hasVariable('args') ? (args as List) : []
for (String arg : cliArgs) {
    def kv = arg.split('=', 2)
    if (kv.length != 2 || !params.containsKey(kv[0]))
        throw new IllegalArgumentException("Unknown argument '" + arg + "': expected name=value with name in " + params.keySet())
    params[kv[0]] = (params[kv[0]] instanceof Boolean) ? Boolean.parseBoolean(kv[1].trim()) : kv[1]
}

def imageData = getCurrentImageData()
if (imageData == null)
    throw new IllegalStateException('No image is open: open an image or use Run for project')
def entry = getProjectEntry()
String imageName = entry != null ? entry.getImageName() : imageData.getServer().getMetadata().getName()

// File-name rule, the same as qupath_bridge/naming.py (tests compare them): drop the last extension,
// then every character other than letters, digits, '.', '_', '-' and space becomes '_'.
def baseNameOf = { String name -> name.replaceAll('\\.[^.]*$', '').replaceAll('[^A-Za-z0-9._ -]', '_') }
String baseName = baseNameOf(imageName)

// Images of the project whose names give the same file name (case ignored, as on Windows and macOS)
// would read the same file, which belongs to one of them only: stop, naming them.
def qpProject = getProject()
if (qpProject != null) {
    def sharing = qpProject.getImageList().findAll { baseNameOf(it.getImageName()).equalsIgnoreCase(baseName) }
    if (sharing.size() > 1)
        throw new IllegalStateException("SlicerGISTRisk: images " +
                sharing.collect { "'" + it.getImageName() + "'" }.join(', ') +
                " of this project have the same file name '" + baseName + params.fileSuffix + "'; " +
                "rename the slide files (gistrisk names the file after the slide file) and the images, so the names differ")
}

String inDir = params.inputDir ? params.inputDir : buildFilePath(PROJECT_BASE_DIR, 'tile_predictions')
File file = new File(buildFilePath(inDir, baseName + params.fileSuffix))
if (!file.isFile()) {
    println "SlicerGISTRisk: no predictions for '" + imageName + "' (looked for " + file + "); skipped"
    return
}

def objects = PathIO.readObjects(file)
if (objects.isEmpty()) {
    println "SlicerGISTRisk: " + file + " holds no objects; nothing added to '" + imageName + "'"
    return
}
def lacking = objects.findAll { !it.getMeasurementList().containsKey(params.measurementName) }
if (!lacking.isEmpty())
    throw new IllegalArgumentException(file.toString() + ": " + lacking.size() + " of " + objects.size() +
            " objects lack the measurement '" + params.measurementName + "'; is this a tile prediction file?")

if (params.replaceExisting) {
    def previous = getDetectionObjects().findAll { it.getMeasurementList().containsKey(params.measurementName) }
    if (!previous.isEmpty()) {
        removeObjects(previous, true)
        println "SlicerGISTRisk: removed " + previous.size() + " objects of an earlier import"
    }
}
addObjects(objects)
fireHierarchyUpdate()
println "SlicerGISTRisk: added " + objects.size() + " objects to '" + imageName + "' from " + file +
        "; review with Measure > Show measurement maps > '" + params.measurementName + "'"
