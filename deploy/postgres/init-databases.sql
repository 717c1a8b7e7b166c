-- Run once by the postgres image on an empty volume: one database for MLflow's tracking
-- and registry, one for loopml's metadata, jobs and prediction log.
CREATE DATABASE mlflow;
CREATE DATABASE loopml;
