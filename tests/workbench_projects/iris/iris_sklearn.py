"""A Workbench sample in miniature: Spark, the Workbench logger and the shared folder."""
import os

from azureml.logging import get_azureml_logger
from pyspark.sql import SparkSession

run_logger = get_azureml_logger()
spark = SparkSession.builder.getOrCreate()
rows = spark.createDataFrame([(5.1, "setosa"), (7.0, "versicolor"), (6.3, "virginica")], ["sepal", "species"])
count = rows.count()
run_logger.log("Row Count", count)
run_logger.log("Accuracy", 0.75)
run_logger.log("Regularization Rate", [10.0, 1.0, 0.1])
run_logger.log("Shuffle Partitions", spark.conf.get("spark.sql.shuffle.partitions"))

# The Workbench way: the share directory ends with a separator.
share = os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"]
with open(share + "iris_count.txt", "w") as handle:
    handle.write(str(count))
os.makedirs("./outputs", exist_ok=True)
with open("./outputs/settings.txt", "w") as handle:
    handle.write(spark.conf.get("spark.app.name") + "\n")
    handle.write(os.environ.get("EXAMPLE_ENV_VAR", "") + "\n")
print("done", count)
