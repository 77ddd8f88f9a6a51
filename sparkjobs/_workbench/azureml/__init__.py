"""sparkjobs' stand-in for Azure ML Workbench's ``azureml`` package: only ``azureml.logging``.

It is put on a job's path by sparkjobs (never installed), and it extends its own path the way
pkgutil-style namespace packages do, so a real ``azureml`` installed beside it stays importable.
"""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
